//! A real Git server over smart HTTP for the GitOps tests: Debian's `lighttpd`
//! in front of `git http-backend` (CGI), with Basic auth, on a loopback port.
//! It can be stopped and started again on the same port (the remote-down test).
//! Work clones use the `git` command line, like a user pushing a change.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The user name git2 sends a token as.
pub const USER: &str = "x-access-token";

/// A lighttpd + git-http-backend server over a directory of bare repositories.
#[derive(Debug)]
pub struct GitServer {
    pub root: PathBuf,
    pub port: u16,
    pub token: String,
    /// With TLS: the CA that signed the server's certificate (for `SSL_CERT_FILE`).
    pub ca: Option<PathBuf>,
    conf: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

fn lighttpd() -> PathBuf {
    for p in ["/usr/sbin/lighttpd", "/usr/bin/lighttpd"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("lighttpd")
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Run `git` with a fixed identity; panics with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        // It would override a clone's http.sslCAInfo (the test CA of an https server).
        .env_remove("GIT_SSL_CAINFO")
        .output()
        .expect("git on PATH");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl GitServer {
    /// Start a server whose repositories need Basic auth `x-access-token:<token>`.
    pub fn start(token: &str) -> Self {
        Self::start_with(token, false)
    }

    /// The same over HTTPS, with a certificate for 127.0.0.1 signed by a test CA
    /// ([`ca`](Self::ca)).
    pub fn start_tls(token: &str) -> Self {
        Self::start_with(token, true)
    }

    fn start_with(token: &str, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).expect("mkdir");
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{USER}:{token}\n")).expect("users");
        let port = free_port();
        let conf = dir.path().join("lighttpd.conf");
        let (ca, tls_conf) = if tls {
            let (ca, pem) = test_certificates(dir.path());
            (
                Some(ca),
                format!(
                    "server.modules += (\"mod_openssl\")\nssl.engine = \"enable\"\nssl.pemfile = \"{}\"\n",
                    pem.display()
                ),
            )
        } else {
            (None, String::new())
        };
        std::fs::write(
            &conf,
            format!(
                r#"server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi")
server.errorlog = "{log}"
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
auth.backend = "plain"
auth.backend.plain.userfile = "{users}"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
{tls_conf}"#,
                root = root.display(),
                log = dir.path().join("error.log").display(),
                users = users.display(),
            ),
        )
        .expect("lighttpd.conf");
        let mut s = Self {
            root,
            port,
            token: token.to_string(),
            ca,
            conf,
            child: None,
            _dir: dir,
        };
        s.resume();
        s
    }

    /// Start (again) on the same port; waits until it accepts connections.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            return;
        }
        let child = Command::new(lighttpd())
            .args(["-D", "-f"])
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lighttpd (apt-get install lighttpd)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("lighttpd did not start on port {}", self.port);
    }

    /// Stop the server (the remote is down until [`resume`](Self::resume)).
    pub fn halt(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Create a bare repository `name.git` that accepts pushes.
    pub fn create_repo(&self, name: &str) -> PathBuf {
        let p = self.root.join(format!("{name}.git"));
        git(
            &self.root,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                p.to_str().expect("utf-8"),
            ],
        );
        git(&p, &["config", "http.receivepack", "true"]);
        p
    }

    /// The repository's URL without credentials (what `cupcake run --repo` gets).
    pub fn url(&self, name: &str) -> String {
        format!("{}://127.0.0.1:{}/git/{name}.git", self.scheme(), self.port)
    }

    fn scheme(&self) -> &'static str {
        if self.ca.is_some() { "https" } else { "http" }
    }

    /// The URL with the credentials (for the `git` command line of the test).
    pub fn auth_url(&self, name: &str) -> String {
        format!(
            "{}://{USER}:{}@127.0.0.1:{}/git/{name}.git",
            self.scheme(),
            self.token,
            self.port
        )
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (openssl CLI): the CA's
/// PEM, and the server's certificate + key in one PEM (lighttpd's `ssl.pemfile`).
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl on PATH");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cupcake e2e CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let pem = dir.join("server.pem");
    let mut both = std::fs::read(dir.join("server.crt")).expect("crt");
    both.extend(std::fs::read(dir.join("server.key")).expect("key"));
    std::fs::write(&pem, both).expect("server.pem");
    (dir.join("ca.pem"), pem)
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A user's working clone: write files, commit, push.
#[derive(Debug)]
pub struct WorkClone {
    pub dir: tempfile::TempDir,
    url: String,
}

impl WorkClone {
    /// An empty working copy whose `origin` is `auth_url`.
    pub fn new(auth_url: &str) -> Self {
        Self::trusting(auth_url, None)
    }

    /// The same, trusting `ca` for https (the server's [`GitServer::ca`]).
    pub fn trusting(auth_url: &str, ca: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["remote", "add", "origin", auth_url]);
        if let Some(ca) = ca {
            git(
                dir.path(),
                &["config", "http.sslCAInfo", ca.to_str().expect("utf-8")],
            );
        }
        Self {
            dir,
            url: auth_url.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write (or overwrite) a file.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    /// Commit everything and push `branch`; the new commit's id.
    pub fn commit_push(&self, message: &str, branch: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(
            self.path(),
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(self.path(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A file of `branch` on the remote, fetched now; `None` when absent.
    pub fn remote_file(&self, branch: &str, rel: &str) -> Option<String> {
        let out = Command::new("git")
            .args([
                "fetch",
                "-q",
                &self.url,
                &format!("+refs/heads/{branch}:refs/remotes/peek/{branch}"),
            ])
            .current_dir(self.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_SSL_CAINFO")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let show = Command::new("git")
            .args(["show", &format!("refs/remotes/peek/{branch}:{rel}")])
            .current_dir(self.path())
            .output()
            .ok()?;
        show.status
            .success()
            .then(|| String::from_utf8_lossy(&show.stdout).to_string())
    }

    /// How many commits `branch` has on the remote (after [`remote_file`](Self::remote_file) fetched it).
    pub fn commit_count(&self, branch: &str) -> usize {
        git(
            self.path(),
            &[
                "rev-list",
                "--count",
                &format!("refs/remotes/peek/{branch}"),
            ],
        )
        .trim()
        .parse()
        .unwrap_or(0)
    }
}
