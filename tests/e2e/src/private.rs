//! A control plane of a test's own, for tests that drive the whole cluster
//! (the rollout controller acts on every node it sees, and runs one DirectUpdate
//! at a time per cluster, so rollout tests cannot share the common harness).
//! Started with `tests/harness/up.sh`, stopped on drop; child processes
//! (`cupcake run`, `cupcake-agent`) are killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};

use crate::{bound_pod, kwok_node, wait_for};

use crate::repo;

/// A private control plane.
#[derive(Debug)]
pub struct PrivateCluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl PrivateCluster {
    /// Start one (with the scheduler); panics with the harness's stderr if it cannot.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// [`Self::start`] with more `tests/harness/up.sh` arguments (e.g. `--lease-seconds`).
    pub fn start_with(name: &str, up_args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("cupcake-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(repo().join("tests/harness/up.sh"))
            .arg("--dir")
            .arg(&dir)
            .arg("--scheduler")
            .args(up_args)
            .output()
            .expect("running tests/harness/up.sh");
        assert!(
            out.status.success(),
            "tests/harness/up.sh failed (logs in {}/logs):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // A watchdog stops it if this process dies without running Drop (SIGKILL, abort).
        let _ = watchdog(&dir);
        Self {
            kubeconfig: dir.join("kubeconfig"),
            dir,
        }
    }

    pub async fn client(&self) -> Client {
        cupcake_reconciler::observe::client(&cupcake_reconciler::observe::KubeArgs {
            kubeconfig: Some(self.kubeconfig.clone()),
            context: None,
        })
        .await
        .expect("client for the private cluster")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("kubectl on PATH")
    }

    /// `kubectl apply -f -` of a YAML document.
    pub fn apply(&self, yaml: &str) {
        use std::io::Write as _;
        let mut c = Command::new("kubectl")
            .args(["apply", "--server-side", "-f", "-"])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write");
        let out = c.wait_with_output().expect("kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start a process with this cluster's kubeconfig; killed when the guard drops.
    pub fn spawn(&self, bin: &Path, args: &[&str], log: &str) -> Proc {
        self.spawn_env(bin, args, log, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables.
    pub fn spawn_env(&self, bin: &Path, args: &[&str], log: &str, env: &[(&str, &Path)]) -> Proc {
        let log_path = self.dir.join("logs").join(log);
        let f = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(f.try_clone().expect("log"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        Proc {
            child,
            log: log_path,
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/harness/down.sh"))
            .arg("--dir")
            .arg(&self.dir)
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "private control plane logs kept in {}/logs",
                self.dir.display()
            );
        }
    }
}

/// A child process, SIGKILLed on drop.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// SIGKILL now (a crash, not a shutdown).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start a process that stops the control plane in `dir` when this test process ends.
pub fn watchdog(dir: &Path) -> std::io::Result<()> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{}' --dir '{}' >/dev/null 2>&1",
        repo().join("tests/harness/down.sh").display(),
        dir.display(),
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["bash", "-c", &script])
        .spawn()
        .map(|_| ())
}

/// A binary of this build next to the test executable (target/<profile>/NAME).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target dir");
    assert!(
        p.is_file(),
        "{} not found: run `cargo build --bin {name}` first",
        p.display()
    );
    p
}

/// A control plane with CRDs, `cps` control-plane nodes (with static pods) and `workers` workers.
pub async fn kwok_cluster(
    name: &str,
    cps: usize,
    workers: usize,
    from: &str,
) -> (PrivateCluster, Client) {
    kwok_cluster_with(name, cps, workers, from, &[]).await
}

/// [`kwok_cluster`] with more `tests/harness/up.sh` arguments.
pub async fn kwok_cluster_with(
    name: &str,
    cps: usize,
    workers: usize,
    from: &str,
    up_args: &[&str],
) -> (PrivateCluster, Client) {
    let pc = PrivateCluster::start_with(name, up_args);
    let out = pc.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        crate::repo().join("crds").to_str().expect("kube call"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = pc.client().await;
    let nodes = Api::<Node>::all(client.clone());
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
    for i in 1..=cps {
        let n = format!("cp-{i}");
        nodes
            .create(&PostParams::default(), &kwok_node(&n, true, from, &[]))
            .await
            .expect("kube call");
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let mut p = bound_pod(
                "kube-system",
                &format!("{c}-{n}"),
                &n,
                &[("component", c), ("tier", "control-plane")],
                &format!("registry.k8s.io/{c}:{from}"),
            );
            p.metadata.annotations = Some(BTreeMap::from([(
                "kubernetes.io/config.mirror".to_string(),
                "e2e".to_string(),
            )]));
            pods.create(&PostParams::default(), &p)
                .await
                .expect("kube call");
        }
    }
    for i in 1..=workers {
        nodes
            .create(
                &PostParams::default(),
                &kwok_node(&format!("w-{i}"), false, from, &[("pool", "general")]),
            )
            .await
            .expect("kube call");
    }
    wait_for("every node Ready", Duration::from_secs(120), || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        (l.items.len() == cps + workers
            && l.items.iter().all(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }))
        .then_some(())
    })
    .await;
    (pc, client)
}

/// `cupcake-agent simulate --all-nodes` for every node of `pc` (100ms steps unless given).
pub fn simulated_agents(pc: &PrivateCluster, state: &std::path::Path, extra: &[&str]) -> Proc {
    let kc = pc.kubeconfig.to_str().expect("utf-8").to_string();
    let st = state.to_str().expect("utf-8").to_string();
    let mut args = vec![
        "simulate",
        "--all-nodes",
        "--kubeconfig",
        &kc,
        "--state-dir",
        &st,
    ];
    if !extra.contains(&"--step-duration") {
        args.extend_from_slice(&["--step-duration", "100ms"]);
    }
    args.extend_from_slice(extra);
    pc.spawn(&bin("cupcake-agent"), &args, "agents.log")
}

/// Stop a harness component (SIGTERM, as a crashed or restarted static pod would
/// be), keep it down for `down`, then start it again with its own command line,
/// environment and log, recording the new pid for down.sh.
pub async fn outage(dir: &Path, component: &str, down: Duration) {
    let pid_file = dir.join("pids").join(format!("{component}.pid"));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the component's pid file")
        .trim()
        .parse()
        .expect("a pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("its command line");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("its environment");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("its working directory");
    let split = |b: &[u8]| -> Vec<String> {
        b.split(|c| *c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).to_string())
            .collect()
    };
    let argv = split(&cmdline);
    let env: Vec<(String, String)> = split(&environ)
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let gone = std::time::Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < gone {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("chaos: {component} stopped for {down:?}");
    tokio::time::sleep(down).await;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("logs").join(format!("{component}.log")))
        .expect("its log");
    // Detached on purpose: it outlives this function, down.sh stops it by its pid file.
    #[allow(clippy::zombie_processes)]
    let child = Command::new("setsid")
        .args(&argv)
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdout(log.try_clone().expect("its log"))
        .stderr(log)
        .spawn()
        .expect("starting it again");
    std::fs::write(&pid_file, format!("{}\n", child.id())).expect("its pid file");
    eprintln!("chaos: {component} started again (pid {})", child.id());
}
