//! `examples/demo.sh` runs green, non-interactively: its own control plane and kwok
//! nodes, a fleet repo over smart HTTP, `cupcake run --repo …`, the simulated agents,
//! a pushed bump and a signed webhook; it ends with the DirectUpdate Succeeded and the
//! status file from the status branch, and leaves nothing behind.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cupcake_e2e::private::bin;
use cupcake_e2e::repo;

#[test]
fn the_demo_upgrades_the_cluster_and_shows_the_status_file() {
    // The binaries of this build (cargo build --bin cupcake --bin cupcake-agent).
    let bin_dir = bin("cupcake").parent().unwrap().to_path_buf();
    assert!(bin("cupcake-agent").is_file());
    let out_dir = tempfile::tempdir().unwrap();
    let stdout = out_dir.path().join("stdout");
    let stderr = out_dir.path().join("stderr");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo().join("examples/demo.sh"))
        .args(["--no-build", "--bin-dir"])
        .arg(&bin_dir)
        .args(["--step-duration", "100ms", "--timeout", "90"])
        .current_dir(repo())
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("bash examples/demo.sh");
    // The script stops everything it started on exit, also on SIGTERM (its trap):
    // end a run that hangs that way, never with SIGKILL first.
    let deadline = started + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let grace = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "examples/demo.sh did not finish within 240s:\n{}\n{}",
                std::fs::read_to_string(&stdout).unwrap_or_default(),
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed();
    let out = std::fs::read_to_string(&stdout).unwrap();
    let err = std::fs::read_to_string(&stderr).unwrap();
    eprintln!("examples/demo.sh took {took:?}");
    assert!(
        status.success(),
        "examples/demo.sh failed ({status}):\n{out}\n--- stderr\n{err}"
    );

    // It says what it did, in order.
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
    };
    let hook = at("sent the signed push webhook: HTTP 202");
    let applied = at("applied");
    let file = at("the status file on branch cupcake/status");
    assert!(hook < applied && applied < file, "{out}");
    assert!(
        out.contains("kubectl get du -w"),
        "tells what to watch:\n{out}"
    );

    // The last line: Succeeded, and Git shows it.
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("[demo] Succeeded: ")
            && last.contains("upgraded cluster demo to 1.34.2")
            && last.contains("cupcake/status"),
        "last line: {last:?}\n{out}"
    );
    // The status file shown just before it: the bump's revision, Succeeded, every node done.
    let status_file: Vec<&str> = lines[file + 1..lines.len() - 1]
        .iter()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    let status_file = status_file.join("\n");
    for want in [
        "cluster: demo",
        "desired: 1.34.2",
        "controlPlane: 1.34.2",
        "1.34.2: 4",
        "verdict: allow",
        "directUpdate:",
        "phase: Succeeded",
        "progress: 4/4",
        "completed: 4",
    ] {
        assert!(
            status_file.lines().any(|l| l.trim() == want),
            "the status file lacks {want:?}:\n{status_file}"
        );
    }
    let revision = status_file
        .lines()
        .find_map(|l| l.strip_prefix("revision: "))
        .unwrap_or_else(|| panic!("no revision in:\n{status_file}"));
    assert!(
        revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{revision:?}"
    );
    assert!(
        !status_file.contains("x-access-token") && !status_file.contains('@'),
        "credentials in the status file:\n{status_file}"
    );

    // Nothing left behind: its state dir (named in the watch hints) is gone.
    let state = out
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("KUBECONFIG=")
                .and_then(|p| p.strip_suffix("/harness/kubeconfig"))
        })
        .unwrap_or_else(|| panic!("no KUBECONFIG= hint in:\n{out}"));
    assert!(
        !std::path::Path::new(state).exists(),
        "{state} still exists after the demo"
    );
    assert!(
        took < Duration::from_secs(90),
        "the demo took {took:?} with 100ms steps"
    );
}
