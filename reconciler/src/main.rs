//! `cupcake`: see `cupcake --help`.
#![forbid(unsafe_code)]

// glibc malloc dominated snapshot parsing in profiles (many small strings).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // mimalloc asks for transparent huge pages on its arenas (and kernels set to
    // `always` give them anyway): the controller's 40 MB heap then sat in half-empty
    // 2 MiB pages, 105 MiB resident instead of 63 at 5,000 nodes / 50,000 pods
    // (docs/performance.md, Scale). A kernel without the flag just keeps them.
    let _ = nix::sys::prctl::set_thp_disable(true);
    cupcake_reconciler::cli::main()
}
