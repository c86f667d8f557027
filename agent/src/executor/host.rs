//! Running commands on the host, for the kubeadm executor.
//!
//! The agent runs in a privileged pod; the host's tools (apt-get, dnf, kubeadm,
//! systemctl) and files live outside it. Every host command goes through
//! [`Host::run`] or [`Host::probe`], in one of two ways chosen by `--host-root`:
//!
//! - `--host-root DIR` (DIR ≠ `/`, e.g. `/host` in the DaemonSet): `chroot DIR CMD…`;
//! - `--host-root /`: `nsenter --target 1 --mount --uts --ipc --net --pid -- CMD…`,
//!   the namespaces of the host's PID 1 (the pod needs `hostPID: true`).
//!
//! Files on the host are read and written with host commands too (`cat`, and
//! `sh -c 'cat > F.cupcake-new && mv F.cupcake-new F'`), so both ways see the
//! same file system, and `cupcake-agent steps` can print them as commands.
//!
//! Commands get a clean environment: `PATH` (the usual sbin/bin directories),
//! `LC_ALL=C` (output the agent parses), `DEBIAN_FRONTEND=noninteractive`,
//! `HOME=/root`, and the proxy variables (`http_proxy`, `https_proxy`,
//! `no_proxy`, upper and lower case) when the agent has them. Each command's
//! line, output and exit code go to the step's log; a command still running
//! after [`COMMAND_TIMEOUT`] is killed and fails its step.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use super::{StepError, StepLog};

/// The longest a host command may run (`kubeadm upgrade apply` takes minutes).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How many output lines a failure message carries.
pub const TAIL_LINES: usize = 5;

/// `PATH` of host commands.
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// One host command: its arguments and, optionally, what it reads on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new<S: AsRef<str>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(|s| s.as_ref().to_string()).collect(),
            stdin: None,
        }
    }

    /// Read a host file (`cat FILE`).
    pub fn read_file(path: &str) -> Self {
        Self::new(["cat", path])
    }

    /// Replace a host file with `content`, atomically (write a sibling, then rename).
    pub fn write_file(path: &str, content: impl AsRef<[u8]>) -> Self {
        Self {
            argv: Self::new([
                "sh",
                "-c",
                r#"cat > "$1.cupcake-new" && mv "$1.cupcake-new" "$1""#,
                "sh",
                path,
            ])
            .argv,
            stdin: Some(content.as_ref().to_vec()),
        }
    }

    /// Put `content` at `path` (mode 0644, the directory made if missing), atomically:
    /// for keyrings, which may be binary.
    pub fn install_file(path: &str, content: impl AsRef<[u8]>) -> Self {
        Self {
            argv: Self::new([
                "sh",
                "-c",
                r#"mkdir -p "${1%/*}" && cat > "$1.cupcake-new" && chmod 0644 "$1.cupcake-new" && mv "$1.cupcake-new" "$1""#,
                "sh",
                path,
            ])
            .argv,
            stdin: Some(content.as_ref().to_vec()),
        }
    }
}

/// The command as a shell line (what the logs and `cupcake-agent steps` show).
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self
            .argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        f.write_str(&line)?;
        if self.stdin.is_some() {
            f.write_str(" < (new content)")?;
        }
        Ok(())
    }
}

/// `a` as one shell word.
pub fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=,@%+-".contains(&b));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// What a finished command said.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The last [`TAIL_LINES`] lines of output (stdout's, then stderr's).
    pub tail: Vec<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// How host commands reach the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `chroot ROOT …` (`--host-root` other than `/`).
    Chroot { chroot: PathBuf, root: PathBuf },
    /// `nsenter --target 1 … -- …` (`--host-root /`, with hostPID).
    Nsenter { nsenter: PathBuf },
}

/// The host, as commands see it.
#[derive(Debug, Clone)]
pub struct Host {
    access: Access,
    timeout: Duration,
}

/// Why the host cannot be reached at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("--host-root {0}: not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "{tool} not found in PATH: the kubeadm executor needs it to run commands on the host ({why})"
    )]
    MissingTool { tool: &'static str, why: String },
}

impl Host {
    /// The host under `root`: chroot into it, or nsenter into PID 1's namespaces when it is `/`.
    pub fn new(root: &Path) -> Result<Self, HostError> {
        if !root.is_dir() {
            return Err(HostError::NotADirectory(root.to_path_buf()));
        }
        let access = if root == Path::new("/") {
            Access::Nsenter {
                nsenter: which("nsenter").ok_or_else(|| HostError::MissingTool {
                    tool: "nsenter",
                    why: "--host-root / means the host's PID 1 namespaces".into(),
                })?,
            }
        } else {
            Access::Chroot {
                chroot: which("chroot").ok_or_else(|| HostError::MissingTool {
                    tool: "chroot",
                    why: format!("--host-root {}", root.display()),
                })?,
                root: root.to_path_buf(),
            }
        };
        Ok(Self {
            access,
            timeout: COMMAND_TIMEOUT,
        })
    }

    /// A host reached through `access` as given (tools at explicit paths).
    pub fn with_access(access: Access) -> Self {
        Self {
            access,
            timeout: COMMAND_TIMEOUT,
        }
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Run `cmd`; a non-zero exit fails the step with the command, the code and the last lines.
    pub async fn run(&self, cmd: &Cmd, log: &mut StepLog) -> Result<Output, StepError> {
        let out = self.probe(cmd, log).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(command_failed(cmd, &out, log))
        }
    }

    /// Run `cmd` and return what it said, whatever its exit code (for state checks).
    /// Only a command that cannot be started or times out is an error.
    pub async fn probe(&self, cmd: &Cmd, log: &mut StepLog) -> Result<Output, StepError> {
        log.line(&format!("$ {cmd}"));
        let (program, prefix): (&Path, Vec<String>) = match &self.access {
            Access::Chroot { chroot, root } => (chroot, vec![root.to_string_lossy().into_owned()]),
            Access::Nsenter { nsenter } => (
                nsenter,
                [
                    "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--",
                ]
                .map(String::from)
                .to_vec(),
            ),
        };
        let mut command = Command::new(program);
        command
            .args(prefix)
            .args(&cmd.argv)
            .env_clear()
            .env("PATH", HOST_PATH)
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("HOME", "/root")
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for v in PROXY_VARS {
            if let Ok(val) = std::env::var(v) {
                command.env(v, val);
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| StepError::Failed(format!("cannot start `{cmd}` on the host: {e}")))?;
        if let (Some(text), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
            stdin
                .write_all(text)
                .await
                .map_err(|e| StepError::Failed(format!("writing to `{cmd}` on the host: {e}")))?;
            drop(stdin);
        }
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let collect = async {
            let mut out = Output::default();
            collect(stdout, stderr, &mut out, log).await;
            let status = child.wait().await;
            (out, status)
        };
        let (mut out, status) = match tokio::time::timeout(self.timeout, collect).await {
            Ok(x) => x,
            Err(_) => {
                let msg = format!(
                    "`{cmd}` still running after {}s: killed",
                    self.timeout.as_secs()
                );
                log.line(&msg);
                return Err(StepError::Failed(msg));
            }
        };
        let status = status
            .map_err(|e| StepError::Failed(format!("waiting for `{cmd}` on the host: {e}")))?;
        out.code = status.code();
        log.line(&match out.code {
            Some(c) => format!("exit {c}"),
            None => format!("ended by a signal ({status})"),
        });
        Ok(out)
    }
}

/// Read both pipes to their end, then put their lines into the log and `out`
/// (stdout first, then stderr: the tail ends with the errors).
async fn collect(
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
    out: &mut Output,
    log: &mut StepLog,
) {
    async fn all(r: Option<impl AsyncRead + Unpin>) -> String {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf).await;
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
    let (o, e) = tokio::join!(all(stdout), all(stderr));
    for l in o.lines() {
        push_line(out, log, l, "");
    }
    for l in e.lines() {
        push_line(out, log, l, "stderr: ");
    }
    out.stdout = o;
    out.stderr = e;
}

fn push_line(out: &mut Output, log: &mut StepLog, line: &str, prefix: &str) {
    log.line(&format!("  {prefix}{line}"));
    if !line.trim().is_empty() {
        out.tail.push(line.trim().to_string());
        if out.tail.len() > TAIL_LINES {
            out.tail.remove(0);
        }
    }
}

/// The step error for a command that exited non-zero: the command, the code,
/// the last lines of its output, and where the whole output is.
pub fn command_failed(cmd: &Cmd, out: &Output, log: &StepLog) -> StepError {
    let code = out.code.map_or_else(
        || "was ended by a signal".to_string(),
        |c| format!("exited with code {c}"),
    );
    let tail = if out.tail.is_empty() {
        "no output".to_string()
    } else {
        out.tail.join(" / ")
    };
    StepError::Failed(format!(
        "`{cmd}` {code}: {tail} (output in {})",
        log.path().display()
    ))
}

/// `name` in the agent's own PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_print_as_shell_lines() {
        assert_eq!(
            Cmd::new(["apt-get", "install", "-y", "kubeadm=1.34.2-1.1"]).to_string(),
            "apt-get install -y kubeadm=1.34.2-1.1"
        );
        assert_eq!(
            Cmd::new(["dpkg-query", "-W", "-f=${Version}", "kubeadm"]).to_string(),
            "dpkg-query -W '-f=${Version}' kubeadm"
        );
        assert_eq!(
            Cmd::write_file("/etc/apt/sources.list.d/kubernetes.list", "x").to_string(),
            r#"sh -c 'cat > "$1.cupcake-new" && mv "$1.cupcake-new" "$1"' sh /etc/apt/sources.list.d/kubernetes.list < (new content)"#
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn a_missing_host_root_is_refused() {
        assert_eq!(
            Host::new(Path::new("/nonexistent/host")).unwrap_err(),
            HostError::NotADirectory(PathBuf::from("/nonexistent/host"))
        );
    }
}
