//! `cupcake-agent`: see `cupcake-agent --help` and the crate docs.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cupcake_agent::cli::main()
}
