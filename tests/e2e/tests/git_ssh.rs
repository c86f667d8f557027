//! The GitOps loop's fetch over ssh:// with a key, against a real OpenSSH server
//! (Debian's sshd on a loopback port, a throwaway host key and user key).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cupcake_e2e::gitserver::{free_port, git};
use cupcake_reconciler::gitops::git::{Auth, KnownHosts, Mirror};

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sshd(dir: &Path, port: u16) -> Sshd {
    keygen(&dir.join("hostkey"));
    keygen(&dir.join("userkey"));
    std::fs::copy(dir.join("userkey.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             StrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let _ = std::fs::create_dir_all("/run/sshd");
    #[allow(clippy::zombie_processes)] // waited for by Sshd's Drop
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/sbin/sshd (apt-get install openssh-server)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Sshd(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sshd did not start");
}

#[test]
fn fetches_over_ssh_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _sshd = sshd(dir.path(), port);
    let bare = dir.path().join("fleet.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let work = dir.path().join("work");
    git(
        dir.path(),
        &["init", "-q", "-b", "main", work.to_str().unwrap()],
    );
    std::fs::create_dir_all(work.join("clusters/demo")).unwrap();
    std::fs::write(
        work.join("clusters/demo/cluster.yaml"),
        "kind: ClusterVersion\n",
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "fleet"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "HEAD:main"]);
    let rev = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let url = format!("ssh://{user}@127.0.0.1:{port}{}", bare.display());
    let key = || Auth::SshKey(dir.path().join("userkey"));
    let open = |auth: Auth| {
        let cache = tempfile::tempdir().unwrap();
        let m = Mirror::open(cache.path(), &url, auth, Duration::from_secs(20)).unwrap();
        (cache, m)
    };
    // No host key to check against: refused (never trust on first use).
    let (_c, m) = open(key());
    let err = m.fetch("main").unwrap_err().to_string();
    assert!(err.contains("hostkey") || err.contains("host key"), "{err}");
    // A known_hosts file with another key for this host: refused, saying so.
    keygen(&dir.path().join("impostor"));
    let known = |pubkey: &str| {
        let text = std::fs::read_to_string(dir.path().join(pubkey)).unwrap();
        let mut parts = text.split_whitespace();
        let (kind, blob) = (parts.next().unwrap(), parts.next().unwrap());
        KnownHosts::parse(&format!("[127.0.0.1]:{port} {kind} {blob}\n")).unwrap()
    };
    let (_c, m) = open(key());
    let err = m
        .with_known_hosts(known("impostor.pub"))
        .fetch("main")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match the known_hosts file"), "{err}");
    // The right host key: fetched.
    let (_c, m) = open(key());
    let m = m.with_known_hosts(known("hostkey.pub"));
    let tip = m
        .fetch("main")
        .unwrap_or_else(|e| panic!("fetch over ssh: {e}"));
    assert_eq!(tip.to_string(), rev);
    let tree = m.tree(tip, ".").unwrap();
    assert!(tree.files.contains_key("clusters/demo/cluster.yaml"));
    // A key the server does not know is refused with a clear error, not a hang.
    keygen(&dir.path().join("otherkey"));
    let (_c, m) = open(Auth::SshKey(dir.path().join("otherkey")));
    let err = m
        .with_known_hosts(known("hostkey.pub"))
        .fetch("main")
        .unwrap_err()
        .to_string();
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(
        err.contains("authentication") || err.contains("auth"),
        "{err}"
    );
}
