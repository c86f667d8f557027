//! `cupcake`: see `cupcake --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cupcake_reconciler::cli::main()
}
