//! `cargo xtask gen [--check] [--root DIR]`: regenerate (or check) `crds/`, the chart's `charts/cupcake/crds/` and `schemas/`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask gen [--check] [--root DIR]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("gen") {
        eprintln!("{USAGE}");
        return ExitCode::from(1);
    }
    let mut check = false;
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--check" => check = true,
            "--root" => match args.next() {
                Some(r) => root = PathBuf::from(r),
                None => {
                    eprintln!("--root needs a directory\n{USAGE}");
                    return ExitCode::from(1);
                }
            },
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(1);
            }
        }
    }
    let result = if check {
        xtask::stale(&root).map(|stale| {
            for p in &stale {
                eprintln!("stale: {} (run `cargo xtask gen`)", p.display());
            }
            if stale.is_empty() {
                println!("generated files are fresh");
            }
            !stale.is_empty()
        })
    } else {
        xtask::write(&root).map(|changed| {
            for p in &changed {
                println!("wrote {}", p.display());
            }
            if changed.is_empty() {
                println!("generated files were already fresh");
            }
            false
        })
    };
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
