//! The container images' Dockerfiles (`images/`), checked without a builder: there
//! is no container engine on the machines that run the test suite (the `docker`
//! client may be installed, but no daemon). What a build would trip over first is
//! checked here: every `COPY` source exists in the build context and is not
//! excluded by the Dockerfile's `.dockerignore`, every workspace member is copied
//! (cargo refuses a workspace with a missing member), the binary built is the one
//! Cargo declares and the one the entrypoint runs, the reconciler runs as a
//! non-root user on a distroless base, and the agent's base has the `nsenter` and
//! `chroot` its kubeadm executor calls.
//!
//! With `CUPCAKE_BUILD_IMAGES=1` and a working builder (`docker`, `podman` or
//! `buildah`) the images are also built (slow: a release build each).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instr {
    line: usize,
    op: String,
    args: String,
}

fn parse(file: &Path) -> Vec<Instr> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if cur.is_none() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let (start, mut acc) = cur.take().unwrap_or((i + 1, String::new()));
        if t.starts_with('#') {
            cur = Some((start, acc));
            continue;
        }
        let (body, more) = match t.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (t, false),
        };
        acc.push_str(body);
        acc.push(' ');
        if more {
            cur = Some((start, acc));
        } else {
            let acc = acc.trim().to_string();
            let (op, args) = acc.split_once(' ').unwrap_or((acc.as_str(), ""));
            let op = op.to_uppercase();
            assert!(
                [
                    "FROM",
                    "RUN",
                    "COPY",
                    "ENV",
                    "ARG",
                    "WORKDIR",
                    "USER",
                    "ENTRYPOINT",
                    "CMD",
                    "EXPOSE",
                    "LABEL",
                    "ADD",
                ]
                .contains(&op.as_str()),
                "{}:{start}: unknown instruction {op:?}",
                file.display()
            );
            out.push(Instr {
                line: start,
                op,
                args: args.trim().to_string(),
            });
        }
    }
    assert!(cur.is_none(), "{}: ends in a continuation", file.display());
    out
}

/// `.dockerignore` patterns (only the plain path forms this repository uses).
fn ignored(dockerfile: &Path) -> Vec<String> {
    let f = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("**/").to_string())
        .collect()
}

fn bin_names(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(manifest)).unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_bin = l == "[[bin]]";
        } else if in_bin && let Some(v) = l.strip_prefix("name = ") {
            names.push(v.trim_matches('"').to_string());
        }
    }
    names
}

fn workspace_members() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("members in Cargo.toml");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

struct Expect {
    dockerfile: &'static str,
    manifest: &'static str,
    package: &'static str,
    bin: &'static str,
}

const IMAGES: [Expect; 2] = [
    Expect {
        dockerfile: "images/cupcake.Dockerfile",
        manifest: "reconciler/Cargo.toml",
        package: "cupcake-reconciler",
        bin: "cupcake",
    },
    Expect {
        dockerfile: "images/cupcake-agent.Dockerfile",
        manifest: "agent/Cargo.toml",
        package: "cupcake-agent",
        bin: "cupcake-agent",
    },
];

fn check(e: &Expect) -> Vec<Instr> {
    let path = repo().join(e.dockerfile);
    let ins = parse(&path);
    let where_ = |i: &Instr| format!("{}:{}", e.dockerfile, i.line);
    let ignore = ignored(&path);
    let froms: Vec<&Instr> = ins.iter().filter(|i| i.op == "FROM").collect();
    assert!(
        froms.len() >= 2,
        "{}: multi-stage (a build stage and a runtime stage)",
        e.dockerfile
    );
    // Every COPY from the context exists and is not ignored; `--from` names a stage.
    let stages: Vec<String> = froms
        .iter()
        .filter_map(|i| i.args.split_once(" AS ").map(|(_, s)| s.trim().to_string()))
        .collect();
    let mut copied = Vec::new();
    for i in ins.iter().filter(|i| i.op == "COPY") {
        let words: Vec<&str> = i.args.split_whitespace().collect();
        if let Some(stage) = words.iter().find_map(|w| w.strip_prefix("--from=")) {
            assert!(
                stages.iter().any(|s| s == stage),
                "{}: no stage {stage}",
                where_(i)
            );
            continue;
        }
        let (srcs, _dst) = words.split_at(words.len() - 1);
        for s in srcs.iter().filter(|s| !s.starts_with("--")) {
            let s = s.trim_end_matches('/').trim_start_matches("./");
            assert!(
                repo().join(s).exists(),
                "{}: COPY source {s} does not exist",
                where_(i)
            );
            assert!(
                !ignore
                    .iter()
                    .any(|p| s == p || s.starts_with(&format!("{p}/"))),
                "{}: COPY source {s} is excluded by {}.dockerignore",
                where_(i),
                e.dockerfile
            );
            copied.push(s.to_string());
        }
    }
    for m in workspace_members() {
        assert!(
            copied
                .iter()
                .any(|c| m == *c || m.starts_with(&format!("{c}/"))),
            "{}: workspace member {m} is not copied (cargo would refuse the workspace)",
            e.dockerfile
        );
    }
    for dir in ["policies", "schemas"] {
        assert!(
            copied.contains(&dir.to_string()),
            "{}: {dir}/ is compiled in",
            e.dockerfile
        );
    }
    // The binary built is Cargo's, and the one the entrypoint runs.
    assert!(
        bin_names(e.manifest).contains(&e.bin.to_string()),
        "{} declares no binary {}",
        e.manifest,
        e.bin
    );
    let build = ins
        .iter()
        .find(|i| i.op == "RUN" && i.args.contains("cargo build"))
        .unwrap_or_else(|| panic!("{}: no cargo build", e.dockerfile));
    for want in [
        format!("-p {}", e.package),
        format!("--bin {}", e.bin),
        "--release".into(),
        "--locked".into(),
        format!("target/release/{}", e.bin),
    ] {
        assert!(
            build.args.contains(&want),
            "{}: cargo build lacks {want:?}",
            where_(build)
        );
    }
    let entry = ins.iter().rfind(|i| i.op == "ENTRYPOINT").unwrap();
    let target = format!("/usr/local/bin/{}", e.bin);
    assert_eq!(entry.args, format!("[\"{target}\"]"), "{}", where_(entry));
    let last_copy = ins.iter().rfind(|i| i.op == "COPY").unwrap();
    assert!(
        last_copy.args.ends_with(&target),
        "{}: copies the binary to {target}",
        where_(last_copy)
    );
    ins
}

fn runtime_stage(ins: &[Instr]) -> Vec<&Instr> {
    let last_from = ins.iter().rposition(|i| i.op == "FROM").unwrap();
    ins[last_from..].iter().collect()
}

/// The reconciler: distroless (no shell, no package manager), a numeric non-root
/// user (so `runAsNonRoot: true` admits it), the same Debian release as the builder
/// (the binary links that release's libssl3).
#[test]
fn the_reconciler_image_builds_cupcake_and_runs_it_as_non_root_on_distroless() {
    let ins = check(&IMAGES[0]);
    let rt = runtime_stage(&ins);
    let base = &rt[0].args;
    assert!(
        base.starts_with("gcr.io/distroless/cc-debian12"),
        "runtime base {base}"
    );
    let arg_release = ins
        .iter()
        .find(|i| i.op == "ARG" && i.args.starts_with("DEBIAN_RELEASE="))
        .unwrap();
    assert_eq!(
        arg_release.args, "DEBIAN_RELEASE=bookworm",
        "debian12 = bookworm"
    );
    let user = rt
        .iter()
        .rfind(|i| i.op == "USER")
        .expect("a USER in the runtime stage");
    let uid: u32 = user
        .args
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user");
    assert_ne!(uid, 0, "the reconciler runs as non-root");
    // The chart runs it with runAsNonRoot and this uid.
    let values = std::fs::read_to_string(repo().join("charts/cupcake/values.yaml")).unwrap();
    assert!(
        values.contains("runAsNonRoot: true"),
        "charts/cupcake/values.yaml"
    );
    let build = ins
        .iter()
        .find(|i| i.op == "ENV" && i.args.contains("LIBZ_SYS_STATIC=1"));
    assert!(
        build.is_some(),
        "zlib linked statically (distroless has no libz)"
    );
}

/// The agent: a base with `nsenter` (util-linux) and `chroot` (coreutils), checked
/// in the image build itself; root, as the chart's privileged container.
#[test]
fn the_agent_image_has_what_the_kubeadm_executor_calls() {
    let ins = check(&IMAGES[1]);
    let rt = runtime_stage(&ins);
    assert!(
        rt[0].args.contains("debian:${DEBIAN_RELEASE}-slim"),
        "{}",
        rt[0].args
    );
    let run = rt.iter().find(|i| i.op == "RUN").unwrap();
    for want in [
        "util-linux",
        "coreutils",
        "ca-certificates",
        "command -v nsenter",
        "command -v chroot",
    ] {
        assert!(run.args.contains(want), "agent runtime RUN lacks {want:?}");
    }
    // The executor really calls those two tools.
    let host = std::fs::read_to_string(repo().join("agent/src/executor/host.rs")).unwrap();
    assert!(
        host.contains("which(\"nsenter\")") && host.contains("chroot"),
        "agent/src/executor/host.rs"
    );
}

/// The images are documented where users look for them.
#[test]
fn the_images_are_documented() {
    let doc = std::fs::read_to_string(repo().join("docs/install.md")).unwrap();
    for want in [
        "images/cupcake.Dockerfile",
        "images/cupcake-agent.Dockerfile",
        "not built",
    ] {
        assert!(doc.contains(want), "docs/install.md lacks {want:?}");
    }
}

/// With `CUPCAKE_BUILD_IMAGES=1`, build both with whatever builder works here.
#[test]
fn images_build_where_a_builder_exists() {
    if std::env::var("CUPCAKE_BUILD_IMAGES").as_deref() != Ok("1") {
        eprintln!(
            "skipping image builds (set CUPCAKE_BUILD_IMAGES=1 where docker/podman/buildah work)"
        );
        return;
    }
    let builder = ["docker", "podman", "buildah"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("info")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("CUPCAKE_BUILD_IMAGES=1 but no working docker, podman or buildah");
    for e in &IMAGES {
        let sub = if builder == "buildah" { "bud" } else { "build" };
        let out = Command::new(builder)
            .args([
                sub,
                "-f",
                e.dockerfile,
                "-t",
                &format!("cupcake-test/{}:ci", e.bin),
                ".",
            ])
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{builder} {sub} {}:\n{}",
            e.dockerfile,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
