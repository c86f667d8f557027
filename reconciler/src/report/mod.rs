//! Reporting back where the change was made: GitHub (commit statuses, plan
//! comments, auto-update pull requests) and the status file on the status branch.

pub mod github;
pub mod status;
