//! GitHub write-back (being built).
