//! What the kubeadm executor's tests on real roots share: the cached roots
//! (`tests/harness/debian-root.sh` for apt, `tests/harness/dnf-root.sh` for dnf),
//! a copy per test, the runner loop, and readers of the package state.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of it; a panic is the failure report

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use cupcake_agent::assignment::{Assignment, Role};
use cupcake_agent::checkpoint::{Checkpoint, Metadata};
use cupcake_agent::executor::Job;
use cupcake_agent::executor::host::Host;
use cupcake_agent::executor::kubeadm::{BundleSource, Kubeadm, LoadedBundle};
use cupcake_agent::operation::{Driven, Progress, drive};
use cupcake_agent::steps::{Step, plan};
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;
use tokio::sync::watch;

pub const CALLS: &str = "var/log/cupcake-standins/calls.log";
pub const KUBE: [Component; 3] = [Component::Kubeadm, Component::Kubelet, Component::Kubectl];

/// Which root: the package manager it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Apt,
    Dnf,
}

impl Flavor {
    fn script(self) -> &'static str {
        match self {
            Self::Apt => "debian-root.sh",
            Self::Dnf => "dnf-root.sh",
        }
    }

    fn require_var(self) -> &'static str {
        match self {
            Self::Apt => "CUPCAKE_REQUIRE_DEBIAN_ROOT",
            Self::Dnf => "CUPCAKE_REQUIRE_DNF_ROOT",
        }
    }
}

/// The cached root, or `None` (with a note) when it is missing and not required
/// (`CUPCAKE_REQUIRE_DEBIAN_ROOT=1` / `CUPCAKE_REQUIRE_DNF_ROOT=1`: tests/run-all.sh sets them).
pub fn cached_root(flavor: Flavor) -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/harness")
        .join(flavor.script());
    let out = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .output()
        .unwrap();
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let complete = dir.parent().is_some_and(|p| p.join(".complete").is_file());
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if complete && is_root {
        return Some(dir);
    }
    let why = if is_root {
        format!(
            "no root at {} (run tests/harness/{})",
            dir.display(),
            flavor.script()
        )
    } else {
        "chroot needs root".to_string()
    };
    if std::env::var(flavor.require_var()).is_ok_and(|v| v == "1") {
        panic!("{}=1: {why}", flavor.require_var());
    }
    eprintln!("skipped: {why}");
    None
}

/// A kubelet /healthz answering ok (the kubelet is a stand-in in the root).
pub fn healthz() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok");
        }
    });
    url
}

/// One node: a copy of the cached root and a state dir.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub flavor: Flavor,
    pub root: PathBuf,
    pub state: PathBuf,
    pub healthz: String,
    pub bundle: Option<LoadedBundle>,
}

impl Node {
    pub fn new(cached: &Path, flavor: Flavor) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let st = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(cached)
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success(), "copying the root");
        let state = dir.path().join("state");
        Self {
            dir,
            flavor,
            root,
            state,
            healthz: healthz(),
            bundle: None,
        }
    }

    pub fn executor(&self) -> Kubeadm {
        let k = Kubeadm::new(Host::new(&self.root).unwrap(), Some(self.healthz.clone()));
        match &self.bundle {
            Some(b) => k.with_bundles(BundleSource::Fixed(b.clone())),
            None => k,
        }
    }

    pub fn in_root(&self, args: &[&str]) -> String {
        let o = Command::new("chroot")
            .arg(&self.root)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", "/root")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `kubeadm 1.34.2-1.1` lines (name order) and the held packages (one name a line).
    pub fn packages(&self) -> (String, String) {
        match self.flavor {
            Flavor::Apt => (
                self.in_root(&[
                    "dpkg-query",
                    "-W",
                    "-f=${Package} ${Version}\n",
                    "kubeadm",
                    "kubelet",
                    "kubectl",
                    "containerd.io",
                ]),
                self.in_root(&["apt-mark", "showhold"]),
            ),
            Flavor::Dnf => {
                let mut pkgs: Vec<String> = self
                    .in_root(&[
                        "rpm",
                        "-q",
                        "--qf",
                        "%{NAME} %{VERSION}-%{RELEASE}\n",
                        "containerd.io",
                        "kubeadm",
                        "kubectl",
                        "kubelet",
                    ])
                    .lines()
                    .map(str::to_string)
                    .collect();
                pkgs.sort();
                let mut held: Vec<String> = self
                    .versionlocks()
                    .into_iter()
                    .map(|l| {
                        l.split_once("-0:")
                            .map_or(l.clone(), |(n, _)| n.to_string())
                    })
                    .collect();
                held.sort();
                (
                    pkgs.iter().map(|l| format!("{l}\n")).collect(),
                    held.iter().map(|l| format!("{l}\n")).collect(),
                )
            }
        }
    }

    /// dnf: `dnf versionlock list` entries (`kubeadm-0:1.34.2-150500.1.1.*`).
    pub fn versionlocks(&self) -> Vec<String> {
        self.in_root(&["dnf", "versionlock", "list", "--quiet"])
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("-0:"))
            .map(str::to_string)
            .collect()
    }

    pub fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_default()
    }

    /// The stand-ins' calls since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<String> {
        let p = self.root.join(CALLS);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, "").unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// How many times the package manager installed `pkg` at `version`.
    pub fn installs(&self, pkg: &str, version: &str) -> usize {
        match self.flavor {
            Flavor::Apt => {
                let what = format!("status installed {pkg}:amd64 {version}");
                self.file("var/log/dpkg.log")
                    .lines()
                    .filter(|l| l.contains(&what))
                    .count()
            }
            Flavor::Dnf => {
                let what = format!("{pkg}-{version}.");
                self.file("var/log/dnf.rpm.log")
                    .lines()
                    .filter(|l| {
                        (l.contains(" Upgrade: ") || l.contains(" Installed: "))
                            && l.contains(&what)
                    })
                    .count()
            }
        }
    }

    /// The package manager's transaction log (to see that nothing ran).
    pub fn package_log(&self) -> String {
        match self.flavor {
            Flavor::Apt => self.file("var/log/dpkg.log"),
            // Without the "logging initialized" line every dnf run writes.
            Flavor::Dnf => self
                .file("var/log/dnf.rpm.log")
                .lines()
                .filter(|l| !l.ends_with("--- logging initialized ---"))
                .map(|l| format!("{l}\n"))
                .collect(),
        }
    }
}

pub struct Run {
    pub role: Role,
    pub assignment: Assignment,
}

pub fn run_for(role: Role, mode: UpgradeMode, target: &str, components: &[Component]) -> Run {
    Run {
        role,
        assignment: Assignment {
            operation_id: "op-1".into(),
            target: target.parse().unwrap(),
            components: components.to_vec(),
            mode,
            package_source: None,
        },
    }
}

impl Run {
    pub fn steps(&self) -> Vec<Step> {
        plan(self.role, self.assignment.mode, &self.assignment.components).unwrap()
    }

    /// Run the steps not done yet with the agent's own step loop
    /// (`operation::drive`; a fresh executor: nothing but the checkpoint and the
    /// host carries over). `stop_after`: stop once that many steps are done, as an
    /// agent shut down between steps would.
    pub async fn go(
        &self,
        node: &Node,
        state: &Path,
        stop_after: Option<usize>,
    ) -> Result<(), String> {
        let steps = self.steps();
        let meta = Metadata {
            operation_id: self.assignment.operation_id.clone(),
            target_version: self.assignment.target.clone(),
            components: self.assignment.components.clone(),
            mode: self.assignment.mode,
            node: "n-1".into(),
            role: self.role,
            steps: steps.iter().map(Step::id).collect(),
            started: Utc::now(),
        };
        let (mut cp, _) = Checkpoint::open(state, &meta).unwrap();
        if cp.failure().is_some() {
            cp.clear_failure().unwrap(); // a retry
        }
        let exec = node.executor();
        let job = Job {
            node: "n-1",
            role: self.role,
            assignment: &self.assignment,
        };
        let (tx, shutdown) = watch::channel(false);
        let mut stop = StopAfter {
            tx,
            left: stop_after.map(|n| n.saturating_sub(cp.done())),
        };
        if stop.left == Some(0) {
            return Ok(());
        }
        match drive(&exec, &job, &steps, &mut cp, &shutdown, &mut stop).await {
            Driven::Completed | Driven::Abandoned => Ok(()),
            Driven::Failed { message, step } => {
                if let Some(id) = step {
                    let log = state.join(format!(
                        "operation-{}/logs/{id}.log",
                        self.assignment.operation_id
                    ));
                    eprintln!(
                        "{message}\n--- {}:\n{}",
                        log.display(),
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                Err(message)
            }
        }
    }
}

/// Asks the step loop to stop once `left` more steps have started (it stops between steps).
struct StopAfter {
    tx: watch::Sender<bool>,
    left: Option<usize>,
}

impl Progress for StopAfter {
    async fn step(&mut self, _id: String) {
        if let Some(n) = &mut self.left {
            *n -= 1;
            if *n == 0 {
                self.tx.send_replace(true);
            }
        }
    }
}

/// The stand-ins' calls that change or check the cluster (not version probes of the runner).
pub fn kubeadm_calls(calls: &[String]) -> Vec<&str> {
    calls
        .iter()
        .map(String::as_str)
        .filter(|c| c.contains(" upgrade "))
        .collect()
}
