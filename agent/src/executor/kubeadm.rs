//! The kubeadm executor: the host changes an operator would type, run on the
//! node through [`super::host`] (chroot into `--host-root`, or nsenter into PID
//! 1's namespaces when it is `/`).
//!
//! Each step of [`crate::steps::plan`] is a short list of [`Action`]s
//! ([`script`]). The executor runs them; `cupcake-agent steps` prints them
//! ([`describe`]) from the same list and the same command builders, so what it
//! shows is what runs. Every action checks the host's state first and changes
//! nothing when it is already where the action would take it:
//!
//! | action | state checked first | commands (apt; dnf/yum alike) |
//! |---|---|---|
//! | find the package manager | — | `sh -c 'command -v apt-get \|\| command -v dnf \|\| command -v yum'` |
//! | installed versions | — | `dpkg-query -W -f='${Status}\|${Version}' PKG` (`rpm -q`): no package above the target (no downgrades), kubeadm at most one minor below |
//! | repository | the file already names the target minor | rewrite `/vX.Y/` in the URLs of `/etc/apt/sources.list.d/kubernetes.list` (or `kubernetes.sources`, or `/etc/yum.repos.d/kubernetes.repo`), nothing else; `apt-get update` (`dnf makecache`); `apt-cache madison PKG` (`dnf list --showduplicates`) must list the target: if not, the file is put back and the step fails before anything is installed |
//! | install and hold | installed at the repository's version and held | `apt-mark unhold`, `apt-get install -y PKG=VERSION`, `apt-mark hold` (`dnf versionlock delete`, `dnf install -y --disableexcludes=kubernetes PKG-VERSION`, `dnf versionlock add`) |
//! | `kubeadm upgrade plan` / `apply` | control plane: the three static pod manifests already run the target tag | `kubeadm upgrade plan vX`, `kubeadm upgrade apply vX --yes` |
//! | `kubeadm upgrade node` | control plane: as above; workers: none (kubeadm rewrites the kubelet configuration from the cluster, the same each time) | `kubeadm upgrade node` |
//! | containerd | installed at the repository's candidate | install the candidate of `containerd.io` (or `containerd`), `systemctl restart containerd` |
//! | restart the kubelet | none (a restart changes no state) | `systemctl daemon-reload`, `systemctl restart kubelet` |
//! | verify | — | `kubeadm version -o short`, `kubelet --version`, `kubectl version --client -o json`, package versions and holds, static pod tags, `systemctl is-active kubelet`, the kubelet's `/healthz` |
//!
//! VERSION is never assumed: it is the exact version the repository lists for
//! the target (`1.34.2-1.1` today on pkgs.k8s.io's deb repositories,
//! `1.34.2-150500.1.1` on its rpm ones); when several revisions exist, the
//! newest.
//!
//! Air-gapped (the assignment's `package-source` names a bundle ConfigMap, read
//! through [`BundleSource`]): the repository file points at the bundle's
//! repository instead (its `keyring.gpg` written to [`bundle_keyring_path`]),
//! VERSION is the bundle's exact version, and the repository listing only checks
//! that it is there ([`bundle_repo`], docs/host-steps.md "Air-gapped bundle").

use std::cmp::Ordering;
use std::time::Duration;

use cupcake_api::KubeVersion;
use cupcake_api::bundle::{self as pkgbundle, PackageBundle};
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;

use super::host::{Cmd, Host, Output};
use super::{Executor, Job, StepError, StepLog};
use crate::assignment::{Assignment, Role};
use crate::steps::{Step, StepKind};

/// The kubelet's health endpoint (the DaemonSet runs on the host network).
pub const DEFAULT_KUBELET_HEALTHZ: &str = "http://127.0.0.1:10248/healthz";
/// How long `verify` waits for the kubelet to answer `ok` after a restart.
pub const HEALTHZ_WAIT: Duration = Duration::from_secs(60);
const HEALTHZ_EVERY: Duration = Duration::from_secs(2);

/// The static pod manifests kubeadm writes on a control-plane node.
pub const MANIFESTS: [&str; 3] = [
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
];

/// containerd's package, in the order they are looked for.
pub const CONTAINERD_PACKAGES: [&str; 2] = ["containerd.io", "containerd"];

/// The host's package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// Debian, Ubuntu: apt-get, apt-cache, apt-mark, dpkg.
    Apt,
    /// Fedora, RHEL 8+, Rocky, Alma: dnf, rpm, versionlock.
    Dnf,
    /// Older RHEL/CentOS: yum (same commands as dnf).
    Yum,
}

impl PackageManager {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
        }
    }

    fn bin(self) -> &'static str {
        match self {
            Self::Apt => "apt-get",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
        }
    }

    /// Where the Kubernetes repository is configured, in the order looked for.
    pub fn repo_files(self) -> &'static [&'static str] {
        match self {
            Self::Apt => &[
                "/etc/apt/sources.list.d/kubernetes.list",
                "/etc/apt/sources.list.d/kubernetes.sources",
            ],
            Self::Dnf | Self::Yum => &["/etc/yum.repos.d/kubernetes.repo"],
        }
    }

    /// Which package manager the host has: apt-get, else dnf, else yum.
    pub fn detect_cmd() -> Cmd {
        Cmd::new([
            "sh",
            "-c",
            "command -v apt-get || command -v dnf || command -v yum",
        ])
    }

    fn from_detected(stdout: &str) -> Option<Self> {
        let first = stdout.lines().next()?.trim();
        match first.rsplit('/').next()? {
            "apt-get" => Some(Self::Apt),
            "dnf" => Some(Self::Dnf),
            "yum" => Some(Self::Yum),
            _ => None,
        }
    }

    /// The installed version of `pkg` (see [`Self::parse_installed`]).
    pub fn installed_cmd(self, pkg: &str) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["dpkg-query", "-W", "-f=${Status}|${Version}", pkg]),
            Self::Dnf | Self::Yum => Cmd::new(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", pkg]),
        }
    }

    fn parse_installed(self, out: &Output) -> Option<String> {
        if !out.success() {
            return None;
        }
        let text = out.stdout.trim();
        match self {
            Self::Apt => {
                let (status, version) = text.split_once('|')?;
                (status.ends_with(" installed") && !version.is_empty()).then(|| version.to_string())
            }
            Self::Dnf | Self::Yum => {
                (!text.is_empty() && !text.contains(' ')).then(|| text.to_string())
            }
        }
    }

    /// Every version of `pkg` the repositories offer.
    pub fn list_cmd(self, pkg: &str) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["apt-cache", "madison", pkg]),
            Self::Dnf | Self::Yum => Cmd::new([
                self.bin(),
                "list",
                "--quiet",
                "--showduplicates",
                "--disableexcludes=kubernetes",
                pkg,
            ]),
        }
    }

    /// The versions of `pkg` in `stdout` of [`Self::list_cmd`], newest first.
    pub fn parse_list(self, pkg: &str, stdout: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for line in stdout.lines() {
            let v = match self {
                // `   kubeadm | 1.34.2-1.1 | https://pkgs.k8s.io/... Packages`
                Self::Apt => {
                    let mut cols = line.split('|').map(str::trim);
                    match (cols.next(), cols.next()) {
                        (Some(name), Some(v)) if name == pkg && !v.is_empty() => v.to_string(),
                        _ => continue,
                    }
                }
                // `kubeadm.x86_64    1.34.2-150500.1.1    kubernetes`; the installed
                // package is listed too, with `@repo`: not what the repositories offer.
                Self::Dnf | Self::Yum => {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    match cols.as_slice() {
                        [name, v, repo, ..]
                            if !repo.starts_with('@')
                                && name.rsplit_once('.').map_or(*name, |(n, _)| n) == pkg =>
                        {
                            v.split_once(':').map_or(*v, |(_, v)| v).to_string()
                        }
                        _ => continue,
                    }
                }
            };
            if !found.contains(&v) {
                found.push(v);
            }
        }
        found.sort_by(|a, b| compare_versions(b, a));
        found
    }

    /// The newest version of `pkg` the repositories would install.
    pub fn candidate_cmd(self, pkg: &str) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["apt-cache", "policy", pkg]),
            Self::Dnf | Self::Yum => self.list_cmd(pkg),
        }
    }

    fn parse_candidate(self, pkg: &str, stdout: &str) -> Option<String> {
        match self {
            Self::Apt => stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("Candidate:"))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && v != "(none)"),
            Self::Dnf | Self::Yum => self.parse_list(pkg, stdout).into_iter().next(),
        }
    }

    /// Refresh the package indexes (after the repository moved).
    pub fn refresh_cmd(self) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["apt-get", "update"]),
            Self::Dnf | Self::Yum => Cmd::new([self.bin(), "makecache", "--refresh"]),
        }
    }

    /// Which packages are held.
    pub fn holds_cmd(self) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["apt-mark", "showhold"]),
            Self::Dnf | Self::Yum => Cmd::new([self.bin(), "versionlock", "list"]),
        }
    }

    fn parse_holds(self, stdout: &str, pkg: &str) -> bool {
        stdout.lines().map(str::trim).any(|l| match self {
            Self::Apt => l == pkg,
            // `kubeadm-0:1.34.2-150500.1.1.*`
            Self::Dnf | Self::Yum => l
                .strip_prefix(pkg)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())),
        })
    }

    pub fn unhold_cmd(self, pkgs: &[&str]) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["apt-mark", "unhold"].iter().chain(pkgs)),
            Self::Dnf | Self::Yum => {
                Cmd::new([self.bin(), "versionlock", "delete"].iter().chain(pkgs))
            }
        }
    }

    pub fn hold_cmd(self, pkgs: &[&str]) -> Cmd {
        match self {
            Self::Apt => Cmd::new(["apt-mark", "hold"].iter().chain(pkgs)),
            Self::Dnf | Self::Yum => {
                Cmd::new([self.bin(), "versionlock", "add"].iter().chain(pkgs))
            }
        }
    }

    /// Install exact versions (conffiles the admin changed are kept).
    pub fn install_cmd(self, pkgs: &[(&str, &str)]) -> Cmd {
        match self {
            Self::Apt => Cmd::new(
                [
                    "apt-get",
                    "install",
                    "-y",
                    "-o",
                    "DPkg::Lock::Timeout=300",
                    "-o",
                    "Dpkg::Options::=--force-confdef",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                ]
                .into_iter()
                .map(String::from)
                .chain(pkgs.iter().map(|(p, v)| format!("{p}={v}"))),
            ),
            Self::Dnf | Self::Yum => Cmd::new(
                [self.bin(), "install", "-y", "--disableexcludes=kubernetes"]
                    .into_iter()
                    .map(String::from)
                    .chain(pkgs.iter().map(|(p, v)| format!("{p}-{v}"))),
            ),
        }
    }
}

impl std::fmt::Display for PackageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compare two package versions the way dpkg and rpm mostly agree on: an
/// epoch first, then runs of digits numerically and other runs as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split_epoch(v: &str) -> (u64, &str) {
        match v.split_once(':') {
            Some((e, rest)) if e.bytes().all(|c| c.is_ascii_digit()) => {
                (e.parse().unwrap_or(0), rest)
            }
            _ => (0, v),
        }
    }
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let ((ea, a), (eb, b)) = (split_epoch(a), split_epoch(b));
    ea.cmp(&eb).then_with(|| {
        let (ra, rb) = (runs(a), runs(b));
        for (x, y) in ra.iter().zip(&rb) {
            let o = match (x, y) {
                ((true, x), (true, y)) => {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                }
                ((_, x), (_, y)) => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        ra.len().cmp(&rb.len())
    })
}

/// The Kubernetes version of a package version: `1:1.34.2-1.1` → 1.34.2.
pub fn upstream(package_version: &str) -> Option<KubeVersion> {
    let v = package_version
        .split_once(':')
        .map_or(package_version, |(_, v)| v);
    let v = v.split_once('-').map_or(v, |(v, _)| v);
    v.parse().ok()
}

/// The exact version of `pkg` to install, from what the repositories list (`listed`, newest
/// first): air-gapped, the bundle's version, which must be listed; otherwise the newest
/// revision of the target. The error says what is missing and what is there.
fn available(p: &Plan<'_>, pkg: &str, listed: &[String]) -> Result<String, String> {
    let shown = || {
        if listed.is_empty() {
            "nothing".to_string()
        } else {
            listed.join(", ")
        }
    };
    match p.bundle_version(pkg) {
        Some(v) => {
            let v = v?;
            if listed.iter().any(|l| l == v) {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "{pkg} {v} of the package bundle {} is not in its repository {} (`{}` lists {})",
                    p.bundle.map_or("", |b| b.source.as_str()),
                    p.bundle_url().and_then(Result::ok).unwrap_or("?"),
                    p.pm.list_cmd(pkg),
                    shown()
                ))
            }
        }
        None => pick(listed, p.target).cloned().ok_or_else(|| {
            format!(
                "{pkg} {} is not in the repository (`{}` lists {})",
                p.target,
                p.pm.list_cmd(pkg),
                shown()
            )
        }),
    }
}

/// The newest of `versions` (newest first) whose upstream part is `target`.
fn pick<'a>(versions: &'a [String], target: &KubeVersion) -> Option<&'a String> {
    versions
        .iter()
        .find(|v| upstream(v).as_ref() == Some(target))
}

/// The repository configuration `text` pointed at `target`'s minor: every
/// `/vMAJOR.MINOR/` in the URLs of its `deb` lines (one-line format), `URIs:`
/// lines (deb822), or `baseurl=`/`gpgkey=` lines (yum) becomes the target's;
/// everything else (signed-by, keyring path, options, comments) stays.
pub fn retarget_repo(text: &str, target: &KubeVersion) -> Result<String, String> {
    let minor = format!("/v{}.{}/", target.major, target.minor);
    let mut found = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let lower = t.to_ascii_lowercase();
        let is_url_line = t.starts_with("deb ")
            || t.starts_with("deb\t")
            || lower.starts_with("uris:")
            || lower.starts_with("baseurl")
            || lower.starts_with("gpgkey");
        if !is_url_line {
            out.push_str(line);
            continue;
        }
        let (new, n) = replace_minor(line, &minor);
        found |= n > 0;
        out.push_str(&new);
    }
    if found {
        Ok(out)
    } else {
        Err("no repository URL with a /vMAJOR.MINOR/ part (like https://pkgs.k8s.io/core:/stable:/v1.34/deb/): it cannot be pointed at another minor".into())
    }
}

/// Replace every `/v<digits>.<digits>/` in `line` with `minor`.
fn replace_minor(line: &str, minor: &str) -> (String, usize) {
    let mut out = String::with_capacity(line.len());
    let mut n = 0;
    let mut rest = line;
    while let Some(i) = rest.find("/v") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let d1 = digits(after);
        let matched = d1 > 0
            && after[d1..].starts_with('.')
            && digits(&after[d1 + 1..]) > 0
            && after[d1 + 1 + digits(&after[d1 + 1..])..].starts_with('/');
        if matched {
            let len = 2 + d1 + 1 + digits(&after[d1 + 1..]) + 1;
            out.push_str(minor);
            rest = &rest[i + len..];
            n += 1;
        } else {
            out.push_str("/v");
            rest = after;
        }
    }
    out.push_str(rest);
    (out, n)
}

/// What one assignment is, for the actions.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub pm: PackageManager,
    pub role: Role,
    pub mode: UpgradeMode,
    pub target: &'a KubeVersion,
    pub components: &'a [Component],
    /// Air-gapped: the bundle the packages come from (exact versions, its repository).
    pub bundle: Option<&'a LoadedBundle>,
}

impl<'a> Plan<'a> {
    /// The Kubernetes packages to upgrade, in install order.
    pub fn kube_packages(&self) -> Vec<&'static str> {
        [
            (Component::Kubeadm, "kubeadm"),
            (Component::Kubelet, "kubelet"),
            (Component::Kubectl, "kubectl"),
        ]
        .into_iter()
        .filter(|(c, _)| self.components.contains(c))
        .map(|(_, p)| p)
        .collect()
    }

    fn has(&self, c: Component) -> bool {
        self.components.contains(&c)
    }

    /// `1.34.2-REV`: how docs show the version found in the repository (air-gapped: the
    /// bundle's exact version of kubeadm).
    fn doc_version(&self) -> String {
        match self.bundle_version("kubeadm") {
            Some(Ok(v)) => v.to_string(),
            _ => format!("{}-REV", self.target),
        }
    }

    /// Air-gapped: the bundle's exact version of `pkg` for the target (`None` when the
    /// packages come from the host's repositories; an error naming the bundle when it
    /// does not list it).
    pub fn bundle_version(&self, pkg: &str) -> Option<Result<&'a str, String>> {
        let b = self.bundle?;
        let Some(c) = component_of(pkg) else {
            return Some(Err(format!("{pkg} is not a bundle component")));
        };
        Some(b.bundle.package_version(self.target, c).ok_or_else(|| {
            format!(
                "the package bundle {} lists no {} for {}",
                b.source,
                pkgbundle::component_name(c),
                self.target
            )
        }))
    }

    /// Air-gapped: the bundle's repository for this package manager, or why there is none.
    fn bundle_url(&self) -> Option<Result<&'a str, String>> {
        let b = self.bundle?;
        let (url, field) = match self.pm {
            PackageManager::Apt => (&b.bundle.repository.apt, "repository.apt"),
            PackageManager::Dnf | PackageManager::Yum => {
                (&b.bundle.repository.dnf, "repository.dnf")
            }
        };
        Some(url.as_deref().ok_or_else(|| {
            format!(
                "the package bundle {} has no {field}, and this host installs with {}",
                b.source, self.pm
            )
        }))
    }
}

/// Air-gapped: whether the plan's bundle has a repository for its package manager and
/// lists every package of the plan for the target (Ok without a bundle).
pub fn check_bundle(p: &Plan<'_>) -> Result<(), String> {
    if let Some(Err(e)) = p.bundle_url() {
        return Err(e);
    }
    let mut pkgs = p.kube_packages();
    if p.has(Component::Containerd) {
        pkgs.push(CONTAINERD_PACKAGES[0]);
    }
    for pkg in pkgs {
        if let Some(Err(e)) = p.bundle_version(pkg) {
            return Err(e);
        }
    }
    Ok(())
}

/// The bundle component a package belongs to.
fn component_of(pkg: &str) -> Option<Component> {
    match pkg {
        "kubeadm" => Some(Component::Kubeadm),
        "kubelet" => Some(Component::Kubelet),
        "kubectl" => Some(Component::Kubectl),
        p if CONTAINERD_PACKAGES.contains(&p) => Some(Component::Containerd),
        _ => None,
    }
}

/// Where a bundle's `keyring.gpg` is written on the host (`signed-by=` / `gpgkey=`).
pub fn bundle_keyring_path(pm: PackageManager) -> &'static str {
    match pm {
        PackageManager::Apt => "/etc/apt/keyrings/cupcake-bundle.gpg",
        PackageManager::Dnf | PackageManager::Yum => "/etc/pki/rpm-gpg/cupcake-bundle.gpg",
    }
}

/// An air-gapped package bundle, read for an assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedBundle {
    /// What it was read from, for messages: `ConfigMap ops/bundle` or `file bundle.yaml`.
    pub source: String,
    pub bundle: PackageBundle,
    /// `keyring.gpg`, when the bundle has one.
    pub keyring: Option<Vec<u8>>,
}

impl LoadedBundle {
    /// A bundle ConfigMap: `bundle.yaml` parsed, `keyring.gpg` from binaryData.
    pub fn from_config_map(
        ns: &str,
        name: &str,
        cm: &k8s_openapi::api::core::v1::ConfigMap,
    ) -> Result<Self, String> {
        let source = format!("ConfigMap {ns}/{name}");
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(pkgbundle::DATA_KEY))
            .ok_or_else(|| format!("{source} has no data key {}", pkgbundle::DATA_KEY))?;
        let bundle = PackageBundle::from_yaml(text)
            .map_err(|e| format!("{source}, {}: {e}", pkgbundle::DATA_KEY))?;
        if cm
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(pkgbundle::KEYRING_KEY))
        {
            return Err(format!(
                "{source}: {} is under data; it belongs under binaryData (the binary OpenPGP keyring)",
                pkgbundle::KEYRING_KEY
            ));
        }
        let keyring = cm
            .binary_data
            .as_ref()
            .and_then(|d| d.get(pkgbundle::KEYRING_KEY))
            .map(|b| b.0.clone());
        Ok(Self {
            source,
            bundle,
            keyring,
        })
    }

    /// A `bundle.yaml` file (and optionally its keyring file), for `cupcake-agent steps
    /// --bundle` and offline runs.
    pub fn from_files(
        bundle: &std::path::Path,
        keyring: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let parsed =
            PackageBundle::from_yaml(&text).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let keyring = keyring
            .map(|k| std::fs::read(k).map_err(|e| format!("{}: {e}", k.display())))
            .transpose()?;
        Ok(Self {
            source: format!("file {}", bundle.display()),
            bundle: parsed,
            keyring,
        })
    }
}

/// Where an air-gapped assignment's bundle is read from.
#[derive(Clone, Default)]
pub enum BundleSource {
    /// The ConfigMap the assignment's `package-source` names, with `get` (the agent).
    Kube(kube::Client),
    /// One bundle for every assignment, air-gapped or not (`cupcake-agent run --bundle`, tests).
    Fixed(LoadedBundle),
    /// None: an air-gapped assignment fails its preflight.
    #[default]
    None,
}

impl std::fmt::Debug for BundleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kube(_) => f.write_str("Kube"),
            Self::Fixed(b) => write!(f, "Fixed({})", b.source),
            Self::None => f.write_str("None"),
        }
    }
}

/// The repository file `file` pointed at an air-gapped bundle's repository `url`, from its
/// current content `old` (`None`: there is none yet). apt: one `deb [signed-by=K] URL ./`
/// line (deb822 `URIs`/`Suites`/`Signed-By` for a `.sources` file), `K` the bundle's keyring
/// or else the key the file already used; dnf/yum: the `baseurl=` (and, with a keyring,
/// `gpgkey=`) of the file's section, everything else kept.
pub fn bundle_repo(
    pm: PackageManager,
    file: &str,
    old: Option<&str>,
    url: &str,
    keyring: Option<&str>,
    source: &str,
) -> String {
    let note = format!(
        "# Written by cupcake-agent: packages from the air-gapped package bundle {source}.\n"
    );
    match pm {
        PackageManager::Apt => {
            let old_key = old.and_then(|t| {
                t.lines().find_map(|l| {
                    let l = l.trim();
                    if l.starts_with('#') {
                        return None;
                    }
                    if let Some(k) = l
                        .strip_prefix("Signed-By:")
                        .or_else(|| l.strip_prefix("signed-by:"))
                    {
                        return Some(k.trim().to_string());
                    }
                    let opts = l.strip_prefix("deb")?.trim_start().strip_prefix('[')?;
                    let opts = opts.split(']').next()?;
                    opts.split_whitespace()
                        .find_map(|o| o.strip_prefix("signed-by="))
                        .map(str::to_string)
                })
            });
            let key = keyring.map(str::to_string).or(old_key);
            if file.ends_with(".sources") {
                let mut t = format!("{note}Types: deb\nURIs: {url}\nSuites: ./\n");
                if let Some(k) = key {
                    t.push_str(&format!("Signed-By: {k}\n"));
                }
                t
            } else {
                match key {
                    Some(k) => format!("{note}deb [signed-by={k}] {url} ./\n"),
                    None => format!("{note}deb {url} ./\n"),
                }
            }
        }
        PackageManager::Dnf | PackageManager::Yum => {
            let Some(old) = old else {
                let mut t = format!(
                    "{note}[kubernetes]\nname=Kubernetes (package bundle)\nbaseurl={url}\nenabled=1\ngpgcheck=1\n"
                );
                if let Some(k) = keyring {
                    t.push_str(&format!("gpgkey=file://{k}\n"));
                }
                t.push_str("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n");
                return t;
            };
            let mut out = String::with_capacity(old.len() + note.len());
            if !old.starts_with(&note) {
                out.push_str(&note);
            }
            let mut gpgkey_seen = false;
            for line in old.split_inclusive('\n') {
                let key = line
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                match key.as_str() {
                    "baseurl" => out.push_str(&format!("baseurl={url}\n")),
                    "gpgkey" if keyring.is_some() => {
                        gpgkey_seen = true;
                        out.push_str(&format!("gpgkey=file://{}\n", keyring.unwrap_or("")));
                    }
                    _ => out.push_str(line),
                }
            }
            if let (Some(k), false) = (keyring, gpgkey_seen) {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&format!("gpgkey=file://{k}\n"));
            }
            out
        }
    }
}

/// One thing a step does on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    DetectPackageManager,
    CheckInstalled,
    Repository,
    FindContainerd,
    InstallAndHold(Vec<&'static str>),
    UpgradeContainerd,
    KubeadmUpgradePlan,
    KubeadmUpgradeApply,
    KubeadmUpgradeNode,
    DaemonReload,
    RestartKubelet,
    VerifyVersions,
    VerifyPackages,
    VerifyStaticPods,
    VerifyKubelet,
}

/// The actions of a step, in order: what the executor runs and `cupcake-agent steps` prints.
pub fn script(kind: StepKind, p: &Plan<'_>) -> Vec<Action> {
    match kind {
        StepKind::Preflight => {
            let mut a = vec![
                Action::DetectPackageManager,
                Action::CheckInstalled,
                Action::Repository,
            ];
            if p.has(Component::Containerd) {
                a.push(Action::FindContainerd);
            }
            a
        }
        StepKind::UpgradeKubeadmPackage => vec![Action::InstallAndHold(vec!["kubeadm"])],
        StepKind::KubeadmUpgrade(UpgradeMode::Apply) => {
            vec![Action::KubeadmUpgradePlan, Action::KubeadmUpgradeApply]
        }
        StepKind::KubeadmUpgrade(UpgradeMode::Node) => vec![Action::KubeadmUpgradeNode],
        StepKind::UpgradeContainerd => vec![Action::UpgradeContainerd],
        StepKind::UpgradeKubeletKubectl { kubelet, kubectl } => {
            let mut pkgs = Vec::new();
            if kubelet {
                pkgs.push("kubelet");
            }
            if kubectl {
                pkgs.push("kubectl");
            }
            vec![Action::InstallAndHold(pkgs)]
        }
        StepKind::RestartKubelet => vec![Action::DaemonReload, Action::RestartKubelet],
        StepKind::Verify => {
            let mut a = vec![Action::VerifyVersions, Action::VerifyPackages];
            if p.role == Role::ControlPlane {
                a.push(Action::VerifyStaticPods);
            }
            a.push(Action::VerifyKubelet);
            a
        }
    }
}

/// One action as `cupcake-agent steps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionDoc {
    /// What it does.
    pub what: String,
    /// When it changes nothing (the state it checks first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_when: Option<String>,
    /// The host commands, in order (VERSION: `<target>-REV`, the exact version the repository lists).
    pub commands: Vec<String>,
}

/// One step as `cupcake-agent steps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDoc {
    pub id: String,
    pub name: String,
    pub actions: Vec<ActionDoc>,
}

/// The steps with their actions and commands.
pub fn describe(steps: &[Step], p: &Plan<'_>, from: Option<&KubeVersion>) -> Vec<StepDoc> {
    steps
        .iter()
        .map(|s| StepDoc {
            id: s.id(),
            name: s.kind.name().to_string(),
            actions: script(s.kind, p).iter().map(|a| a.doc(p, from)).collect(),
        })
        .collect()
}

fn cmds(list: impl IntoIterator<Item = Cmd>) -> Vec<String> {
    list.into_iter().map(|c| c.to_string()).collect()
}

impl Action {
    /// How the action reads in `cupcake-agent steps`, from the same command builders it runs.
    pub fn doc(&self, p: &Plan<'_>, from: Option<&KubeVersion>) -> ActionDoc {
        let pm = p.pm;
        let t = p.target;
        let v = p.doc_version();
        let pkgs = p.kube_packages();
        let doc = |what: String, skipped_when: Option<String>, commands: Vec<String>| ActionDoc {
            what,
            skipped_when,
            commands,
        };
        match self {
            Self::DetectPackageManager => doc(
                "find the host's package manager: apt-get, else dnf, else yum".into(),
                None,
                cmds([PackageManager::detect_cmd()]),
            ),
            Self::CheckInstalled => doc(
                format!(
                    "read the installed versions: none above {t} (no downgrades), kubeadm at most one minor below; kubeadm and kubelet must be installed, a missing kubectl is left alone"
                ),
                None,
                cmds(pkgs.iter().map(|k| pm.installed_cmd(k))),
            ),
            Self::Repository if p.bundle.is_some() => {
                let file = pm.repo_files()[0];
                let b = p.bundle.map_or("", |b| b.source.as_str());
                let url = p.bundle_url().and_then(Result::ok).unwrap_or("?");
                let keyring = p.bundle.and_then(|b| b.keyring.as_ref()).map(|_| bundle_keyring_path(pm));
                let mut c = vec![Cmd::read_file(file)];
                if let Some(k) = keyring {
                    c.push(Cmd::new(["sha256sum", k]));
                    c.push(Cmd::install_file(k, ""));
                }
                c.push(Cmd::write_file(file, ""));
                c.push(pm.refresh_cmd());
                c.extend(pkgs.iter().map(|k| pm.list_cmd(k)));
                doc(
                    format!(
                        "air-gapped: point the Kubernetes repository {file} at the package bundle {b}'s repository {url}{}; refresh; check the bundle's exact versions ({}) are in it. A version missing from it puts the file back as it was and fails here, before any package changes",
                        match keyring {
                            Some(k) => format!(" (its keyring.gpg written to {k}, named by the repository)"),
                            None => " (signed by the key the file already names)".to_string(),
                        },
                        pkgs.iter()
                            .map(|k| format!("{k} {}", p.bundle_version(k).and_then(Result::ok).unwrap_or("?")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some("the writes, when the file and keyring already say so".to_string()),
                    cmds(c),
                )
            }
            Self::Repository => {
                let file = pm.repo_files()[0];
                let moved = match from {
                    Some(f) if (f.major, f.minor) != (t.major, t.minor) => {
                        format!(" (from /v{}.{}/)", f.major, f.minor)
                    }
                    Some(_) => " (the same minor: no change)".to_string(),
                    None => String::new(),
                };
                let mut c = vec![
                    Cmd::read_file(file),
                    Cmd::write_file(file, ""),
                    pm.refresh_cmd(),
                ];
                c.extend(pkgs.iter().map(|k| pm.list_cmd(k)));
                doc(
                    format!(
                        "point the Kubernetes repository {file}{} at /v{}.{}/{moved}: only that part of its URLs changes (signed-by, keyring, options stay); refresh; find the exact version of {} for {t} in it (VERSION = {v}, the newest revision listed). A version missing from the repository puts the file back as it was and fails here, before any package changes",
                        if pm == PackageManager::Apt { " (or kubernetes.sources)" } else { "" },
                        t.major,
                        t.minor,
                        pkgs.join(", "),
                    ),
                    Some(format!("the write, when the file already names /v{}.{}/", t.major, t.minor)),
                    cmds(c),
                )
            }
            Self::FindContainerd => doc(
                format!(
                    "containerd: which package is installed ({}) and the newest version the repositories offer",
                    CONTAINERD_PACKAGES.join(" or ")
                ),
                None,
                cmds([pm.installed_cmd(CONTAINERD_PACKAGES[0]), pm.candidate_cmd(CONTAINERD_PACKAGES[0])]),
            ),
            Self::InstallAndHold(list) => {
                let exact: Vec<String> = list
                    .iter()
                    .map(|k| match p.bundle_version(k) {
                        Some(Ok(b)) => b.to_string(),
                        _ => v.clone(),
                    })
                    .collect();
                let pairs: Vec<(&str, &str)> =
                    list.iter().zip(&exact).map(|(k, v)| (*k, v.as_str())).collect();
                let mut c = vec![];
                if pm == PackageManager::Apt {
                    c.extend([dpkg_audit_cmd(), dpkg_configure_cmd()]);
                }
                c.extend(list.iter().map(|k| pm.installed_cmd(k)));
                c.push(pm.holds_cmd());
                c.extend(list.iter().map(|k| pm.list_cmd(k)));
                c.push(pm.unhold_cmd(list));
                c.push(pm.install_cmd(&pairs));
                c.push(pm.hold_cmd(list));
                doc(
                    format!(
                        "install {} at VERSION ({v}) and hold {}: unhold, install, hold, then read the installed versions back{}",
                        list.join(" and "),
                        if list.len() > 1 { "them" } else { "it" },
                        if pm == PackageManager::Apt {
                            " (first, `dpkg --configure -a` when `dpkg --audit` reports an interrupted dpkg run)"
                        } else {
                            ""
                        }
                    ),
                    Some("every one is installed at VERSION and held".to_string()),
                    cmds(c),
                )
            }
            Self::UpgradeContainerd if p.bundle.is_some() => {
                let pkg = CONTAINERD_PACKAGES[0];
                let want = p.bundle_version(pkg).and_then(Result::ok).unwrap_or("?");
                doc(
                    format!("install containerd at the package bundle's {want} (a hold is kept), then restart containerd"),
                    Some(format!("containerd is installed at {want} or above")),
                    cmds([
                        pm.installed_cmd(pkg),
                        pm.list_cmd(pkg),
                        pm.install_cmd(&[(pkg, want)]),
                        restart_cmd("containerd"),
                    ]),
                )
            }
            Self::UpgradeContainerd => {
                let pkg = CONTAINERD_PACKAGES[0];
                doc(
                    "install the newest containerd the repositories offer (CANDIDATE), keeping a hold if there is one, then restart containerd".to_string(),
                    Some("containerd is installed at CANDIDATE".into()),
                    cmds([
                        pm.installed_cmd(pkg),
                        pm.candidate_cmd(pkg),
                        pm.install_cmd(&[(pkg, "CANDIDATE")]),
                        restart_cmd("containerd"),
                    ]),
                )
            }
            Self::KubeadmUpgradePlan => doc(
                format!("check that kubeadm can upgrade the cluster to {}", t.with_v()),
                Some(static_pods_skip(t)),
                cmds([kubeadm_plan_cmd(t)]),
            ),
            Self::KubeadmUpgradeApply => doc(
                format!(
                    "upgrade the control plane (the first control-plane node of the hop), then check the static pods run {}",
                    t.with_v()
                ),
                Some(static_pods_skip(t)),
                cmds(
                    [kubeadm_apply_cmd(t)]
                        .into_iter()
                        .chain(MANIFESTS.iter().map(|m| Cmd::read_file(m))),
                ),
            ),
            Self::KubeadmUpgradeNode => match p.role {
                Role::ControlPlane => doc(
                    format!(
                        "upgrade this control-plane node's static pods and kubelet configuration, then check the static pods run {}",
                        t.with_v()
                    ),
                    Some(static_pods_skip(t)),
                    cmds(
                        [kubeadm_node_cmd()]
                            .into_iter()
                            .chain(MANIFESTS.iter().map(|m| Cmd::read_file(m))),
                    ),
                ),
                Role::Worker => doc(
                    "upgrade this worker's kubelet configuration from the cluster (kubeadm writes the same file each time)".into(),
                    None,
                    cmds([kubeadm_node_cmd()]),
                ),
            },
            Self::DaemonReload => doc(
                "reload systemd's units (the packages may have changed the kubelet's drop-ins)".into(),
                None,
                cmds([daemon_reload_cmd()]),
            ),
            Self::RestartKubelet => doc(
                "restart the kubelet: from here the node reports the new version".into(),
                None,
                cmds([restart_cmd("kubelet")]),
            ),
            Self::VerifyVersions => doc(
                format!("the binaries answer {}", t.with_v()),
                None,
                cmds(pkgs.iter().map(|k| version_cmd(k))),
            ),
            Self::VerifyPackages => doc(
                format!("the packages are installed at {t} and held"),
                None,
                cmds(pkgs.iter().map(|k| pm.installed_cmd(k)).chain([pm.holds_cmd()])),
            ),
            Self::VerifyStaticPods => doc(
                format!("the static pod manifests run {}", t.with_v()),
                None,
                cmds(MANIFESTS.iter().map(|m| Cmd::read_file(m))),
            ),
            Self::VerifyKubelet => doc(
                format!(
                    "the kubelet is active and its /healthz answers ok (--kubelet-healthz-url, default {DEFAULT_KUBELET_HEALTHZ}; waited for up to {}s)",
                    HEALTHZ_WAIT.as_secs()
                ),
                None,
                vec![
                    is_active_cmd("kubelet").to_string(),
                    format!("GET {DEFAULT_KUBELET_HEALTHZ} (from the agent, on the host network)"),
                ],
            ),
        }
    }
}

fn static_pods_skip(t: &KubeVersion) -> String {
    format!(
        "the control-plane node's static pod manifests ({}) already run {}",
        MANIFESTS
            .iter()
            .map(|m| m.rsplit('/').next().unwrap_or(m))
            .collect::<Vec<_>>()
            .join(", "),
        t.with_v()
    )
}

fn dpkg_audit_cmd() -> Cmd {
    Cmd::new(["dpkg", "--audit"])
}

fn dpkg_configure_cmd() -> Cmd {
    Cmd::new(["dpkg", "--configure", "-a"])
}

pub fn kubeadm_plan_cmd(t: &KubeVersion) -> Cmd {
    Cmd::new(["kubeadm", "upgrade", "plan", &t.with_v()])
}

pub fn kubeadm_apply_cmd(t: &KubeVersion) -> Cmd {
    Cmd::new(["kubeadm", "upgrade", "apply", &t.with_v(), "--yes"])
}

pub fn kubeadm_node_cmd() -> Cmd {
    Cmd::new(["kubeadm", "upgrade", "node"])
}

fn daemon_reload_cmd() -> Cmd {
    Cmd::new(["systemctl", "daemon-reload"])
}

fn restart_cmd(unit: &str) -> Cmd {
    Cmd::new(["systemctl", "restart", unit])
}

fn is_active_cmd(unit: &str) -> Cmd {
    Cmd::new(["systemctl", "is-active", unit])
}

fn version_cmd(binary: &str) -> Cmd {
    match binary {
        "kubeadm" => Cmd::new(["kubeadm", "version", "-o", "short"]),
        "kubelet" => Cmd::new(["kubelet", "--version"]),
        _ => Cmd::new(["kubectl", "version", "--client", "-o", "json"]),
    }
}

/// The version a binary printed for [`version_cmd`].
fn parse_binary_version(binary: &str, stdout: &str) -> Option<KubeVersion> {
    match binary {
        "kubectl" => serde_json::from_str::<serde_json::Value>(stdout)
            .ok()?
            .pointer("/clientVersion/gitVersion")?
            .as_str()?
            .parse()
            .ok(),
        // `v1.34.2` / `Kubernetes v1.34.2`
        _ => stdout.split_whitespace().last()?.parse().ok(),
    }
}

/// The image a static pod manifest runs (its first `image:`).
fn manifest_image(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix("image:")
            .map(|i| i.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// The kubeadm executor.
#[derive(Debug)]
pub struct Kubeadm {
    host: Host,
    /// The kubelet's health URL; `None`: not checked.
    healthz: Option<String>,
    pm: OnceCell<PackageManager>,
    bundles: BundleSource,
}

impl Kubeadm {
    pub fn new(host: Host, healthz: Option<String>) -> Self {
        Self {
            host,
            healthz,
            pm: OnceCell::new(),
            bundles: BundleSource::None,
        }
    }

    /// Where air-gapped assignments' bundles are read from (default: nowhere, they fail).
    #[must_use]
    pub fn with_bundles(mut self, bundles: BundleSource) -> Self {
        self.bundles = bundles;
        self
    }

    /// The bundle of an air-gapped assignment (`package-source`), read now.
    async fn bundle(
        &self,
        a: &Assignment,
        log: &mut StepLog,
    ) -> Result<Option<LoadedBundle>, StepError> {
        let b = match (&self.bundles, &a.package_source) {
            (BundleSource::Fixed(b), _) => b.clone(),
            (_, None) => return Ok(None),
            (BundleSource::Kube(client), Some((ns, name))) => {
                let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                    kube::Api::namespaced(client.clone(), ns);
                let cm = match api.get(name).await {
                    Ok(cm) => cm,
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        return Err(StepError::Failed(format!(
                            "the package bundle ConfigMap {ns}/{name} (annotation {}) does not exist",
                            cupcake_api::labels::PACKAGE_SOURCE
                        )));
                    }
                    Err(error) => {
                        return Err(StepError::Kube {
                            what: format!("reading the package bundle ConfigMap {ns}/{name}"),
                            error,
                        });
                    }
                };
                LoadedBundle::from_config_map(ns, name, &cm).map_err(StepError::Failed)?
            }
            (BundleSource::None, Some((ns, name))) => {
                return Err(StepError::Failed(format!(
                    "the assignment names the package bundle {ns}/{name} but this agent has no way to read it"
                )));
            }
        };
        log.line(&format!(
            "air-gapped: packages from the package bundle {}{}",
            b.source,
            if b.keyring.is_some() {
                " (with keyring.gpg)"
            } else {
                ""
            }
        ));
        Ok(Some(b))
    }

    async fn package_manager(&self, log: &mut StepLog) -> Result<PackageManager, StepError> {
        if let Some(pm) = self.pm.get() {
            return Ok(*pm);
        }
        let cmd = PackageManager::detect_cmd();
        let out = self.host.probe(&cmd, log).await?;
        let pm = PackageManager::from_detected(&out.stdout).ok_or_else(|| {
            StepError::Failed(
                "the host has none of apt-get, dnf, yum: the kubeadm executor installs packages with one of them".into(),
            )
        })?;
        log.line(&format!("package manager: {pm}"));
        let _ = self.pm.set(pm);
        Ok(pm)
    }

    async fn installed(
        &self,
        pm: PackageManager,
        pkg: &str,
        log: &mut StepLog,
    ) -> Result<Option<String>, StepError> {
        let out = self.host.probe(&pm.installed_cmd(pkg), log).await?;
        Ok(pm.parse_installed(&out))
    }

    async fn held(&self, pm: PackageManager, log: &mut StepLog) -> Result<String, StepError> {
        let cmd = pm.holds_cmd();
        let out = self.host.probe(&cmd, log).await?;
        if out.success() {
            Ok(out.stdout)
        } else if pm != PackageManager::Apt {
            // No versionlock plugin: nothing is locked that way (the repository's
            // `exclude=` line still keeps the packages from moving).
            log.line("no versionlock plugin answered: no package is version-locked");
            Ok(String::new())
        } else {
            Err(super::host::command_failed(&cmd, &out, log))
        }
    }

    /// The versions of `pkg` the repositories list, newest first.
    async fn listed(
        &self,
        pm: PackageManager,
        pkg: &str,
        log: &mut StepLog,
    ) -> Result<Vec<String>, StepError> {
        let cmd = pm.list_cmd(pkg);
        let out = self.host.probe(&cmd, log).await?;
        // `dnf list` exits 1 for "no matching packages": an empty list, not an error.
        if !out.success() && pm == PackageManager::Apt {
            return Err(super::host::command_failed(&cmd, &out, log));
        }
        Ok(pm.parse_list(pkg, &out.stdout))
    }

    /// The packages of the plan that are installed (a missing kubectl is left
    /// alone; a missing kubeadm or kubelet is an error).
    async fn present(
        &self,
        p: &Plan<'_>,
        pkgs: &[&'static str],
        log: &mut StepLog,
    ) -> Result<Vec<(&'static str, String)>, StepError> {
        let mut out = Vec::new();
        for pkg in pkgs {
            match self.installed(p.pm, pkg, log).await? {
                Some(v) => out.push((*pkg, v)),
                None if *pkg == "kubectl" => {
                    log.line("kubectl is not installed on this node: left alone")
                }
                None => {
                    return Err(StepError::Failed(format!(
                        "{pkg} is not installed on the host ({} found nothing): is this a kubeadm node?",
                        p.pm.installed_cmd(pkg)
                    )));
                }
            }
        }
        Ok(out)
    }

    async fn static_pods_at(
        &self,
        t: &KubeVersion,
        log: &mut StepLog,
    ) -> Result<(bool, Vec<String>), StepError> {
        let mut all = true;
        let mut seen = Vec::new();
        for m in MANIFESTS {
            let out = self.host.probe(&Cmd::read_file(m), log).await?;
            let image = out.success().then(|| manifest_image(&out.stdout)).flatten();
            let at = image
                .as_deref()
                .and_then(KubeVersion::from_image)
                .is_some_and(|v| &v == t);
            all &= at;
            seen.push(format!("{m}: {}", image.as_deref().unwrap_or("(no image)")));
        }
        Ok((all, seen))
    }

    async fn run_action(
        &self,
        action: &Action,
        p: &Plan<'_>,
        log: &mut StepLog,
    ) -> Result<(), StepError> {
        let pm = p.pm;
        let t = p.target;
        match action {
            Action::DetectPackageManager => {
                // Detected before the first action of every step.
                log.line(&format!("package manager: {pm}"));
                Ok(())
            }
            Action::CheckInstalled => {
                for (pkg, v) in self.present(p, &p.kube_packages(), log).await? {
                    let Some(have) = upstream(&v) else {
                        return Err(StepError::Failed(format!(
                            "{pkg} {v} is installed: not a Kubernetes version"
                        )));
                    };
                    if &have > t {
                        return Err(StepError::Failed(format!(
                            "{pkg} {v} is installed, above the target {t}: CUPCAKE does not downgrade"
                        )));
                    }
                    if pkg == "kubeadm" && (have.major != t.major || t.minor > have.minor + 1) {
                        return Err(StepError::Failed(format!(
                            "kubeadm {v} is installed and the target is {t}: kubeadm upgrades one minor at a time"
                        )));
                    }
                    log.line(&format!("{pkg} {v} installed"));
                }
                Ok(())
            }
            Action::Repository => self.repository(p, log).await,
            Action::FindContainerd => {
                let (pkg, have) = self.containerd(pm, log).await?;
                if let Some(v) = p.bundle_version(pkg) {
                    let v = v.map_err(StepError::Failed)?;
                    log.line(&format!(
                        "{pkg} {have} installed; the package bundle has {v}"
                    ));
                    return Ok(());
                }
                let cand = self.candidate(pm, pkg, log).await?;
                log.line(&format!(
                    "{pkg} {have} installed; the repositories offer {}",
                    cand.as_deref().unwrap_or("nothing")
                ));
                Ok(())
            }
            Action::InstallAndHold(list) => self.install_and_hold(p, list, log).await,
            Action::UpgradeContainerd => {
                self.finish_interrupted(pm, log).await?;
                let (pkg, have) = self.containerd(pm, log).await?;
                let cand = if p.bundle.is_some() {
                    let listed = self.listed(pm, pkg, log).await?;
                    available(p, pkg, &listed).map_err(StepError::Failed)?
                } else {
                    let Some(cand) = self.candidate(pm, pkg, log).await? else {
                        return Err(StepError::Failed(format!(
                            "the repositories offer no {pkg} ({} lists no candidate)",
                            pm.candidate_cmd(pkg)
                        )));
                    };
                    cand
                };
                if compare_versions(&have, &cand) != Ordering::Less {
                    log.line(&format!(
                        "{pkg} {have} is installed, {cand} wanted: nothing to change"
                    ));
                    return Ok(());
                }
                let held = pm.parse_holds(&self.held(pm, log).await?, pkg);
                if held {
                    self.host.run(&pm.unhold_cmd(&[pkg]), log).await?;
                }
                self.host.run(&pm.install_cmd(&[(pkg, &cand)]), log).await?;
                if held {
                    self.host.run(&pm.hold_cmd(&[pkg]), log).await?;
                }
                self.host.run(&restart_cmd("containerd"), log).await?;
                Ok(())
            }
            Action::KubeadmUpgradePlan => {
                if p.role == Role::ControlPlane && self.static_pods_at(t, log).await?.0 {
                    log.line(&format!(
                        "the static pods already run {}: no plan needed",
                        t.with_v()
                    ));
                    return Ok(());
                }
                self.host.run(&kubeadm_plan_cmd(t), log).await.map(drop)
            }
            Action::KubeadmUpgradeApply => {
                self.kubeadm_upgrade(p, &kubeadm_apply_cmd(t), log).await
            }
            Action::KubeadmUpgradeNode => {
                if p.role == Role::Worker {
                    return self.host.run(&kubeadm_node_cmd(), log).await.map(drop);
                }
                self.kubeadm_upgrade(p, &kubeadm_node_cmd(), log).await
            }
            Action::DaemonReload => self.host.run(&daemon_reload_cmd(), log).await.map(drop),
            Action::RestartKubelet => self.host.run(&restart_cmd("kubelet"), log).await.map(drop),
            Action::VerifyVersions => {
                for (pkg, _) in self.present(p, &p.kube_packages(), log).await? {
                    let cmd = version_cmd(pkg);
                    let out = self.host.run(&cmd, log).await?;
                    let got = parse_binary_version(pkg, &out.stdout);
                    if got.as_ref() != Some(t) {
                        return Err(StepError::Failed(format!(
                            "`{cmd}` answers {:?}, want {}",
                            out.stdout.trim(),
                            t.with_v()
                        )));
                    }
                    log.line(&format!("{pkg} {}: ok", t.with_v()));
                }
                Ok(())
            }
            Action::VerifyPackages => {
                let holds = self.held(pm, log).await?;
                for (pkg, v) in self.present(p, &p.kube_packages(), log).await? {
                    if upstream(&v).as_ref() != Some(t) {
                        return Err(StepError::Failed(format!(
                            "{pkg} {v} is installed, want {t}"
                        )));
                    }
                    if !pm.parse_holds(&holds, pkg) {
                        return Err(StepError::Failed(format!(
                            "{pkg} is not held (`{}` does not list it)",
                            pm.holds_cmd()
                        )));
                    }
                    log.line(&format!("{pkg} {v} installed and held: ok"));
                }
                Ok(())
            }
            Action::VerifyStaticPods => {
                let (at, seen) = self.static_pods_at(t, log).await?;
                if !at {
                    return Err(StepError::Failed(format!(
                        "the static pods do not all run {}: {}",
                        t.with_v(),
                        seen.join(", ")
                    )));
                }
                log.line(&format!("static pods run {}: ok", t.with_v()));
                Ok(())
            }
            Action::VerifyKubelet => {
                self.host.run(&is_active_cmd("kubelet"), log).await?;
                if let Some(url) = &self.healthz {
                    wait_healthy(url, log).await?;
                } else {
                    log.line("kubelet /healthz not checked (--kubelet-healthz-url is empty)");
                }
                Ok(())
            }
        }
    }

    async fn kubeadm_upgrade(
        &self,
        p: &Plan<'_>,
        cmd: &Cmd,
        log: &mut StepLog,
    ) -> Result<(), StepError> {
        let t = p.target;
        if self.static_pods_at(t, log).await?.0 {
            log.line(&format!(
                "the static pods already run {}: `{cmd}` has nothing to do",
                t.with_v()
            ));
            return Ok(());
        }
        self.host.run(cmd, log).await?;
        let (at, seen) = self.static_pods_at(t, log).await?;
        if !at {
            return Err(StepError::Failed(format!(
                "`{cmd}` succeeded but the static pods do not all run {}: {}",
                t.with_v(),
                seen.join(", ")
            )));
        }
        Ok(())
    }

    async fn repository(&self, p: &Plan<'_>, log: &mut StepLog) -> Result<(), StepError> {
        let pm = p.pm;
        let t = p.target;
        // Air-gapped: everything the bundle must say is checked before anything changes.
        check_bundle(p).map_err(|e| StepError::Failed(format!("{e}; nothing changed")))?;
        let bundle_url = p.bundle_url().and_then(Result::ok);
        let mut found = None;
        for f in pm.repo_files() {
            let out = self.host.probe(&Cmd::read_file(f), log).await?;
            if out.success() {
                found = Some((*f, out.stdout));
                break;
            }
        }
        let (file, old, new) = match (found, p.bundle, bundle_url) {
            (Some((file, old)), None, _) => {
                let new = retarget_repo(&old, t)
                    .map_err(|e| StepError::Failed(format!("{file}: {e}")))?;
                (file, Some(old), new)
            }
            (None, None, _) | (_, Some(_), None) => {
                return Err(StepError::Failed(format!(
                    "no Kubernetes package repository on the host ({}): set up pkgs.k8s.io as kubeadm's installation guide says",
                    pm.repo_files().join(" or ")
                )));
            }
            (found, Some(b), Some(url)) => {
                let (file, old) = match found {
                    Some((f, o)) => (f, Some(o)),
                    None => (pm.repo_files()[0], None),
                };
                let keyring = b.keyring.as_ref().map(|_| bundle_keyring_path(pm));
                let new = bundle_repo(pm, file, old.as_deref(), url, keyring, &b.source);
                (file, old, new)
            }
        };
        // The bundle's keyring, where the repository file says.
        let mut keyring_put = None;
        if let Some(key) = p.bundle.and_then(|b| b.keyring.as_deref()) {
            let path = bundle_keyring_path(pm);
            let want = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key));
            let out = self.host.probe(&Cmd::new(["sha256sum", path]), log).await?;
            let have = out
                .success()
                .then(|| out.stdout.split_whitespace().next().map(str::to_string))
                .flatten();
            if have.as_deref() == Some(want.as_str()) {
                log.line(&format!("{path} already holds the bundle's keyring"));
            } else {
                if have.is_some() {
                    self.host
                        .run(
                            &Cmd::new(["cp", "-p", path, &format!("{path}.cupcake-old")]),
                            log,
                        )
                        .await?;
                }
                self.host.run(&Cmd::install_file(path, key), log).await?;
                log.line(&format!("{path}: the bundle's keyring.gpg written"));
                keyring_put = Some((path, have.is_some()));
            }
        }
        let changed = old.as_deref() != Some(new.as_str());
        let whereto = match bundle_url {
            Some(u) => u.to_string(),
            None => format!("/v{}.{}/", t.major, t.minor),
        };
        if changed {
            self.host.run(&Cmd::write_file(file, &new), log).await?;
            log.line(&format!("{file} now points at {whereto}:"));
            for l in new.lines() {
                log.line(&format!("  {l}"));
            }
        } else {
            log.line(&format!("{file} already points at {whereto}"));
        }
        let refreshed = self.host.run(&pm.refresh_cmd(), log).await;
        let mut missing = Vec::new();
        if refreshed.is_ok() {
            let mut pkgs: Vec<&str> = self
                .present(p, &p.kube_packages(), log)
                .await?
                .into_iter()
                .map(|(pkg, _)| pkg)
                .collect();
            if p.bundle.is_some() && p.has(Component::Containerd) {
                pkgs.push(self.containerd(pm, log).await?.0);
            }
            for pkg in pkgs {
                let listed = self.listed(pm, pkg, log).await?;
                match available(p, pkg, &listed) {
                    Ok(v) => log.line(&format!("{pkg} {t}: {v}")),
                    Err(e) => missing.push(e),
                }
            }
        }
        if refreshed.is_ok() && missing.is_empty() {
            if let Some((path, true)) = keyring_put {
                self.host
                    .run(&Cmd::new(["rm", "-f", &format!("{path}.cupcake-old")]), log)
                    .await?;
            }
            return Ok(());
        }
        // Put the repository back as it was: nothing changed on the host.
        let mut put_back = "unchanged".to_string();
        if changed {
            match &old {
                Some(old) => self.host.run(&Cmd::write_file(file, old), log).await?,
                None => self.host.run(&Cmd::new(["rm", "-f", file]), log).await?,
            };
            put_back = if old.is_some() {
                "put back as it was"
            } else {
                "removed again"
            }
            .to_string();
        }
        if let Some((path, existed)) = keyring_put {
            if existed {
                self.host
                    .run(&Cmd::new(["mv", &format!("{path}.cupcake-old"), path]), log)
                    .await?;
            } else {
                self.host.run(&Cmd::new(["rm", "-f", path]), log).await?;
            }
        }
        if (changed || keyring_put.is_some())
            && let Err(e) = self.host.run(&pm.refresh_cmd(), log).await
        {
            log.line(&format!("refreshing the package indexes again failed: {e}"));
        }
        let why = match refreshed {
            Err(e) => e.to_string(),
            Ok(_) => missing.join("; "),
        };
        Err(StepError::Failed(format!(
            "{why}; {file} {put_back}, no package changed"
        )))
    }

    async fn install_and_hold(
        &self,
        p: &Plan<'_>,
        list: &[&'static str],
        log: &mut StepLog,
    ) -> Result<(), StepError> {
        let pm = p.pm;
        self.finish_interrupted(pm, log).await?;
        let present = self.present(p, list, log).await?;
        if present.is_empty() {
            return Ok(());
        }
        let holds = self.held(pm, log).await?;
        let mut wanted: Vec<(&str, String)> = Vec::new();
        let mut done = true;
        for (pkg, have) in &present {
            let listed = self.listed(pm, pkg, log).await?;
            let want = available(p, pkg, &listed)
                .map_err(|e| StepError::Failed(format!("{e} (it was there in preflight)")))?;
            let held = pm.parse_holds(&holds, pkg);
            done &= *have == want && held;
            wanted.push((pkg, want));
        }
        let names: Vec<&str> = wanted.iter().map(|(p, _)| *p).collect();
        let summary = wanted
            .iter()
            .map(|(p, v)| format!("{p} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        if done {
            log.line(&format!("{summary}: installed and held, nothing to change"));
            return Ok(());
        }
        let to_unhold: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| pm.parse_holds(&holds, n))
            .collect();
        if !to_unhold.is_empty() {
            self.host.run(&pm.unhold_cmd(&to_unhold), log).await?;
        }
        let pairs: Vec<(&str, &str)> = wanted.iter().map(|(p, v)| (*p, v.as_str())).collect();
        self.host.run(&pm.install_cmd(&pairs), log).await?;
        self.host.run(&pm.hold_cmd(&names), log).await?;
        for (pkg, want) in &wanted {
            let got = self.installed(pm, pkg, log).await?;
            if got.as_deref() != Some(want.as_str()) {
                return Err(StepError::Failed(format!(
                    "after `{}`, {pkg} is {}, want {want}",
                    pm.install_cmd(&pairs),
                    got.as_deref().unwrap_or("not installed")
                )));
            }
        }
        log.line(&format!("{summary}: installed and held"));
        Ok(())
    }

    /// apt: a dpkg run that was killed (the agent or the node went down in the middle of
    /// an install) leaves packages unpacked but not configured, and apt-get refuses to
    /// run until `dpkg --configure -a`: finish it first (`dpkg --audit` says whether).
    async fn finish_interrupted(
        &self,
        pm: PackageManager,
        log: &mut StepLog,
    ) -> Result<(), StepError> {
        if pm != PackageManager::Apt {
            return Ok(());
        }
        let out = self.host.probe(&dpkg_audit_cmd(), log).await?;
        if out.stdout.trim().is_empty() {
            return Ok(());
        }
        log.line("an earlier dpkg run was interrupted: finishing it first");
        self.host.run(&dpkg_configure_cmd(), log).await.map(drop)
    }

    async fn containerd(
        &self,
        pm: PackageManager,
        log: &mut StepLog,
    ) -> Result<(&'static str, String), StepError> {
        for pkg in CONTAINERD_PACKAGES {
            if let Some(v) = self.installed(pm, pkg, log).await? {
                return Ok((pkg, v));
            }
        }
        Err(StepError::Failed(format!(
            "containerd is among the components but neither {} is installed",
            CONTAINERD_PACKAGES.join(" nor ")
        )))
    }

    async fn candidate(
        &self,
        pm: PackageManager,
        pkg: &str,
        log: &mut StepLog,
    ) -> Result<Option<String>, StepError> {
        let cmd = pm.candidate_cmd(pkg);
        let out = self.host.run(&cmd, log).await?;
        Ok(pm.parse_candidate(pkg, &out.stdout))
    }
}

impl Executor for Kubeadm {
    fn name(&self) -> &'static str {
        "kubeadm"
    }

    async fn run_step(
        &self,
        job: &Job<'_>,
        step: &Step,
        log: &mut StepLog,
    ) -> Result<(), StepError> {
        let pm = self.package_manager(log).await?;
        // The bundle is read by the steps that install (not by kubeadm, restart, verify).
        let installs = matches!(
            step.kind,
            StepKind::Preflight
                | StepKind::UpgradeKubeadmPackage
                | StepKind::UpgradeContainerd
                | StepKind::UpgradeKubeletKubectl { .. }
        );
        let bundle = if installs {
            self.bundle(job.assignment, log).await?
        } else {
            None
        };
        let plan = Plan {
            pm,
            role: job.role,
            mode: job.assignment.mode,
            target: &job.assignment.target,
            components: &job.assignment.components,
            bundle: bundle.as_ref(),
        };
        for action in script(step.kind, &plan) {
            log.line(&format!("# {}", action.doc(&plan, None).what));
            self.run_action(&action, &plan, log).await?;
        }
        Ok(())
    }
}

/// GET the kubelet's health URL until it answers 200 `ok`, for up to [`HEALTHZ_WAIT`].
async fn wait_healthy(url: &str, log: &mut StepLog) -> Result<(), StepError> {
    let deadline = tokio::time::Instant::now() + HEALTHZ_WAIT;
    loop {
        let answer = http_get(url).await;
        match &answer {
            Ok((200, body)) if body.trim() == "ok" => {
                log.line(&format!("GET {url}: 200 ok"));
                return Ok(());
            }
            Ok((code, body)) => log.line(&format!("GET {url}: {code} {}", body.trim())),
            Err(e) => log.line(&format!("GET {url}: {e}")),
        }
        if tokio::time::Instant::now() >= deadline {
            let last = match answer {
                Ok((code, body)) => format!("{code} {}", body.trim()),
                Err(e) => e,
            };
            return Err(StepError::Failed(format!(
                "the kubelet is not healthy: GET {url} answered {last} for {}s",
                HEALTHZ_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(HEALTHZ_EVERY).await;
    }
}

/// A plain HTTP/1.0 GET (the kubelet's healthz is http on loopback): status and body.
async fn http_get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let connect = tokio::net::TcpStream::connect(authority);
    let mut stream = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .map_err(|_| "no answer within 5s".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                head.lines().next().unwrap_or("")
            )
        })?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        s.parse().unwrap()
    }

    #[test]
    fn the_repository_moves_to_the_target_minor_and_keeps_everything_else() {
        let list = "# managed by hand\ndeb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n";
        assert_eq!(
            retarget_repo(list, &v("1.34.2")).unwrap(),
            "# managed by hand\ndeb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /\n"
        );
        // Already there: the same text.
        assert_eq!(retarget_repo(list, &v("1.33.9")).unwrap(), list);
        let repo = "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n";
        let got = retarget_repo(repo, &v("1.34.0")).unwrap();
        assert!(got.contains("baseurl=https://pkgs.k8s.io/core:/stable:/v1.34/rpm/\n"));
        assert!(got.contains("gpgkey=https://pkgs.k8s.io/core:/stable:/v1.34/rpm/repodata"));
        assert!(got.contains("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"));
        let sources = "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.33/deb/\nSuites: /\nSigned-By: /etc/apt/keyrings/k.gpg\n";
        assert!(
            retarget_repo(sources, &v("1.34.1"))
                .unwrap()
                .contains("URIs: https://pkgs.k8s.io/core:/stable:/v1.34/deb/\n")
        );
        // A commented-out line is left alone; nothing else names a minor.
        let e = retarget_repo("# deb https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\ndeb https://apt.kubernetes.io/ kubernetes-xenial main\n", &v("1.34.1")).unwrap_err();
        assert!(e.contains("/vMAJOR.MINOR/"), "{e}");
    }

    #[test]
    fn madison_and_dnf_list_give_versions_newest_first() {
        let madison = "   kubeadm | 1.34.1-1.1 | https://pkgs.k8s.io/core:/stable:/v1.34/deb  Packages\n   kubeadm | 1.34.2-1.2 | https://pkgs.k8s.io/core:/stable:/v1.34/deb  Packages\n   kubeadm | 1.34.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.34/deb  Packages\n kubeadm-x | 1.99.0-1 | elsewhere\n";
        let listed = PackageManager::Apt.parse_list("kubeadm", madison);
        assert_eq!(listed, ["1.34.2-1.2", "1.34.2-1.1", "1.34.1-1.1"]);
        assert_eq!(pick(&listed, &v("1.34.2")).unwrap(), "1.34.2-1.2");
        assert_eq!(pick(&listed, &v("1.34.3")), None);
        let dnf = "Installed Packages\nkubeadm.x86_64   1.33.4-150500.1.1   @kubernetes\nAvailable Packages\nkubeadm.x86_64   1.34.1-150500.1.1   kubernetes\nkubeadm.x86_64   1.34.2-150500.1.1   kubernetes\nkubeadm.x86_64   1.34.10-150500.1.1   kubernetes\n";
        let listed = PackageManager::Dnf.parse_list("kubeadm", dnf);
        assert_eq!(listed[0], "1.34.10-150500.1.1");
        assert!(
            !listed.contains(&"1.33.4-150500.1.1".to_string()),
            "the installed one"
        );
        assert_eq!(pick(&listed, &v("1.34.2")).unwrap(), "1.34.2-150500.1.1");
    }

    #[test]
    fn versions_compare_by_number_runs() {
        assert_eq!(
            compare_versions("1.34.10-1.1", "1.34.9-1.1"),
            Ordering::Greater
        );
        assert_eq!(
            compare_versions("1.34.2-1.1", "1.34.2-1.1"),
            Ordering::Equal
        );
        assert_eq!(compare_versions("1.7.28-1", "1.7.24-1"), Ordering::Greater);
        assert_eq!(compare_versions("1:1.0-1", "2.0-1"), Ordering::Greater);
        assert_eq!(upstream("1:1.34.2-1.1"), Some(v("1.34.2")));
        assert_eq!(upstream("1.34.2-150500.1.1"), Some(v("1.34.2")));
    }

    #[test]
    fn installed_holds_and_binaries_are_read() {
        let ok = |s: &str| Output {
            code: Some(0),
            stdout: s.into(),
            ..Output::default()
        };
        let apt = PackageManager::Apt;
        assert_eq!(
            apt.parse_installed(&ok("hold ok installed|1.33.4-1.1"))
                .as_deref(),
            Some("1.33.4-1.1")
        );
        assert_eq!(
            apt.parse_installed(&ok("deinstall ok config-files|1.33.4-1.1")),
            None
        );
        assert!(apt.parse_holds("kubeadm\nkubelet\n", "kubelet"));
        assert!(!apt.parse_holds("kubeadm\n", "kubelet"));
        assert!(PackageManager::Dnf.parse_holds(
            "Last metadata check\nkubeadm-0:1.34.2-150500.1.1.*\n",
            "kubeadm"
        ));
        assert!(!PackageManager::Dnf.parse_holds("kubeadm-0:1.34.2-150500.1.1.*\n", "kube"));
        assert_eq!(
            parse_binary_version("kubelet", "Kubernetes v1.34.2\n"),
            Some(v("1.34.2"))
        );
        assert_eq!(
            parse_binary_version("kubeadm", "v1.34.2\n"),
            Some(v("1.34.2"))
        );
        assert_eq!(
            parse_binary_version(
                "kubectl",
                r#"{"clientVersion":{"gitVersion":"v1.34.2"},"kustomizeVersion":"v5"}"#
            ),
            Some(v("1.34.2"))
        );
        assert_eq!(
            manifest_image("spec:\n  containers:\n  - command: [a]\n    image: registry.k8s.io/kube-apiserver:v1.34.2\n").as_deref(),
            Some("registry.k8s.io/kube-apiserver:v1.34.2")
        );
        assert_eq!(
            PackageManager::from_detected("/usr/bin/dnf\n"),
            Some(PackageManager::Dnf)
        );
        assert_eq!(
            PackageManager::Apt.parse_candidate(
                "containerd.io",
                "containerd.io:\n  Installed: 1.7.24-1\n  Candidate: 1.7.28-1\n"
            ),
            Some("1.7.28-1".into())
        );
    }

    #[test]
    fn bundle_repository_files() {
        let src = "ConfigMap ops/b";
        let note = "# Written by cupcake-agent: packages from the air-gapped package bundle ConfigMap ops/b.\n";
        let url = "file:///var/lib/cupcake/bundle/apt";
        let list = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n";
        let sources = "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.33/deb/\nSuites: /\nSigned-By: /etc/apt/keyrings/k.gpg\n";
        let repo = "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n";
        let k = Some("/etc/apt/keyrings/cupcake-bundle.gpg");
        let apt = PackageManager::Apt;
        let dnf = PackageManager::Dnf;
        let list_file = "/etc/apt/sources.list.d/kubernetes.list";
        /// package manager, file, its content, keyring, what is written
        type Case<'a> = (
            PackageManager,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            String,
        );
        let cases: Vec<Case<'_>> = vec![
            // The bundle's keyring, or the key the file already named, or none.
            (apt, list_file, Some(list), k, format!("{note}deb [signed-by=/etc/apt/keyrings/cupcake-bundle.gpg] {url} ./\n")),
            (apt, list_file, Some(list), None, format!("{note}deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {url} ./\n")),
            (apt, list_file, None, None, format!("{note}deb {url} ./\n")),
            (apt, "/etc/apt/sources.list.d/kubernetes.sources", Some(sources), None, format!("{note}Types: deb\nURIs: {url}\nSuites: ./\nSigned-By: /etc/apt/keyrings/k.gpg\n")),
            // dnf: baseurl (and gpgkey with a keyring) replaced, the rest kept.
            (dnf, "/etc/yum.repos.d/kubernetes.repo", Some(repo), Some("/etc/pki/rpm-gpg/cupcake-bundle.gpg"),
             format!("{note}{}", repo
                .replace("baseurl=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/", &format!("baseurl={url}"))
                .replace("gpgkey=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/repodata/repomd.xml.key", "gpgkey=file:///etc/pki/rpm-gpg/cupcake-bundle.gpg"))),
            (dnf, "/etc/yum.repos.d/kubernetes.repo", Some(repo), None,
             format!("{note}{}", repo.replace("baseurl=https://pkgs.k8s.io/core:/stable:/v1.33/rpm/", &format!("baseurl={url}")))),
            (dnf, "/etc/yum.repos.d/kubernetes.repo", None, None,
             format!("{note}[kubernetes]\nname=Kubernetes (package bundle)\nbaseurl={url}\nenabled=1\ngpgcheck=1\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")),
        ];
        for (pm, file, old, key, want) in cases {
            let got = bundle_repo(pm, file, old, url, key, src);
            assert_eq!(got, want, "{pm} {file} {old:?} {key:?}");
            // Written once: the same again from what it wrote.
            assert_eq!(
                bundle_repo(pm, file, Some(&got), url, key, src),
                want,
                "rerun: {pm} {file}"
            );
        }
    }

    #[test]
    fn bundle_config_maps() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let yaml = "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: PackageBundle\nrepository: {apt: \"file:///m\"}\nversions: {\"1.34.2\": {kubeadm: \"1.34.2-1.1\"}}\n";
        let cm = |data: &[(&str, &str)], bin: Option<&[u8]>| ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            binary_data: bin.map(|b| {
                [(
                    "keyring.gpg".to_string(),
                    k8s_openapi::ByteString(b.to_vec()),
                )]
                .into()
            }),
            ..ConfigMap::default()
        };
        let b =
            LoadedBundle::from_config_map("ops", "b", &cm(&[("bundle.yaml", yaml)], Some(b"key")))
                .unwrap();
        assert_eq!(b.source, "ConfigMap ops/b");
        assert_eq!(b.keyring.as_deref(), Some(&b"key"[..]));
        let cases: Vec<(ConfigMap, &str)> = vec![
            (cm(&[], None), "ConfigMap ops/b has no data key bundle.yaml"),
            (
                cm(&[("bundle.yaml", "kind: x\n")], None),
                "ConfigMap ops/b, bundle.yaml: ",
            ),
            (
                cm(
                    &[("bundle.yaml", yaml), ("keyring.gpg", "-----BEGIN")],
                    None,
                ),
                "keyring.gpg is under data; it belongs under binaryData",
            ),
        ];
        for (c, want) in cases {
            let e = LoadedBundle::from_config_map("ops", "b", &c).unwrap_err();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
