//! `cupcake`: see `cupcake --help`.
#![forbid(unsafe_code)]

// glibc malloc dominated snapshot parsing in profiles (many small strings).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cupcake_reconciler::cli::main()
}
