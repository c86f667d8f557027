#!/usr/bin/env bash
# Builds (once) and caches a root that looks like an RPM-based kubeadm node at 1.33.4, for the
# kubeadm executor's dnf tests (agent/tests/kubeadm_dnf.rs): Debian's real dnf 4, rpm and
# dnf-plugins-core (versionlock) resolve, install and lock packages in it, under chroot. No
# Fedora/RHEL root is reachable from these machines; Debian ships the same dnf and rpm.
#
#   <cache>/debian-base/<suite>/                     debootstrap minbase (debian-root.sh --base)
#   <cache>/dnf-root/<suite>-tools/                  a copy of it + dnf rpm createrepo-c
#                                                    dnf-plugins-core (apt-get from the mirror)
#   <cache>/dnf-root/<suite>-<hash>/rootfs/          a copy of that, plus:
#     /srv/pkgs.k8s.io/core:/stable:/v1.33/rpm/      rpm repositories laid out like pkgs.k8s.io's
#     /srv/pkgs.k8s.io/core:/stable:/v1.34/rpm/      (createrepo_c), of stand-in kubeadm, kubelet
#                                                    and kubectl at 1.33.4, 1.34.0 and 1.34.2, all
#                                                    -150500.1.1 (built with rpmbuild)
#     /srv/docker-ce/                                containerd.io 1.7.24-3.1 and 1.7.28-1
#     /var/lib/cupcake/bundle/rpm/                   an air-gapped bundle's mirror: the 1.34.2
#                                                    packages and containerd.io 1.7.28-1
#     /etc/yum.repos.d/kubernetes.repo               pkgs.k8s.io's repo file (v1.33), with
#                                                    exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
#     /etc/yum.repos.d/docker-ce.repo                the containerd repository
#     /etc/kubernetes/manifests/kube-*.yaml          static pod manifests with image tag v1.33.4
#     /usr/bin/systemctl                             stand-in (standins.sh)
#   kubeadm, kubelet, kubectl 1.33.4-150500.1.1 and containerd.io 1.7.24-3.1 installed, the three
#   version-locked (dnf versionlock).
#
# What makes the Debian root an RPM node: apt-get is moved to /usr/lib/cupcake-standins/ (the
# executor finds dnf, as on RHEL); a stand-in `cupcake-release` package provides
# `system-release(releasever) = 9` (dnf detects $releasever from it, as from redhat-release);
# Debian's `local` dnf plugin (not on RHEL) is disabled. The stand-in repositories are not
# signed (gpgcheck=0): rpm signature checking is not what these tests are about. Debian's rpm
# keeps its database in $HOME/.rpmdb (the executor runs commands with HOME=/root).
#
# Tests copy rootfs/ (cp -a --reflink=auto) and never touch the cache. The cache key <hash> is
# the SHA-256 of this script and standins.sh.
#
# Usage: dnf-root.sh [--print-dir] [--force]
# Needs root. Environment: CUPCAKE_HARNESS_CACHE (default ~/.cache/cupcake-harness).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
SUITE="${CUPCAKE_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
HASH="$(cat "$0" "$HERE/standins.sh" | sha256sum | cut -c1-12)"
TOOLS_PKGS=(dnf rpm createrepo-c dnf-plugins-core)
TOOLS="$CACHE_ROOT/dnf-root/$SUITE-tools"
OUT="$CACHE_ROOT/dnf-root/$SUITE-$HASH"
ROOTFS="$OUT/rootfs"
K8S_VERSIONS=(1.33.4 1.34.0 1.34.2)
K8S_RELEASE=150500.1.1
CONTAINERD_VERSIONS=(1.7.24-3.1 1.7.28-1)
INITIAL_K8S=1.33.4
INITIAL_CONTAINERD=1.7.24-3.1
BUNDLE_RPM=/var/lib/cupcake/bundle/rpm

log() { printf '[dnf-root.sh] %s\n' "$*" >&2; }
die() { printf '[dnf-root.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-dir) printf '%s\n' "$ROOTFS"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

if ((force == 0)) && [[ -f "$OUT/.complete" ]]; then
  log "cached: $ROOTFS"
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "needs root (chroot)"
start=$SECONDS
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
in_root() { # root cmd...
  local r=$1
  shift
  chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"
}

# 1. The tools layer: the debootstrap base + Debian's dnf and rpm, once per suite.
if [[ ! -f "$TOOLS/.complete" ]] || [[ "$(cat "$TOOLS/.complete")" != "${TOOLS_PKGS[*]}" ]]; then
  base="$("$HERE/debian-root.sh" --base)"
  log "installing ${TOOLS_PKGS[*]} into a copy of $base"
  rm -rf "$TOOLS.tmp"
  mkdir -p "$TOOLS.tmp"
  cp -a --reflink=auto "$base/." "$TOOLS.tmp/"
  rm -f "$TOOLS.tmp/.complete"
  { in_root "$TOOLS.tmp" apt-get update -qq &&
    in_root "$TOOLS.tmp" apt-get install -y -qq --no-install-recommends "${TOOLS_PKGS[@]}" &&
    in_root "$TOOLS.tmp" apt-get clean; } >"$CACHE_ROOT/dnf-root/$SUITE-tools.log" 2>&1 ||
    { tail -n 20 "$CACHE_ROOT/dnf-root/$SUITE-tools.log" >&2; die "installing ${TOOLS_PKGS[*]} failed (log: $CACHE_ROOT/dnf-root/$SUITE-tools.log)"; }
  rm -rf "$TOOLS"
  mv "$TOOLS.tmp" "$TOOLS"
  echo "${TOOLS_PKGS[*]}" >"$TOOLS/.complete"
  log "tools layer ready in $((SECONDS - start))s"
fi

# 2. The node.
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/rootfs"
cp -a --reflink=auto "$TOOLS/." "$OUT.tmp/rootfs/"
rm -f "$OUT.tmp/rootfs/.complete"
R="$OUT.tmp/rootfs"
B=/tmp/cupcake-rpmbuild   # inside the root
mkdir -p "$R$B"/{SOURCES,SPECS} "$R/etc/cupcake-standins" "$R/var/log/cupcake-standins" \
  "$R/var/lib/cupcake-standins/systemd" "$R/etc/kubernetes/manifests" "$R/var/lib/kubelet" \
  "$R/etc/yum.repos.d" "$R/usr/lib/cupcake-standins"

# What tests never read (apt's package lists, docs, translations): smaller copies per test.
rm -rf "$R"/var/lib/apt/lists/* "$R/usr/share/doc" "$R/usr/share/man" "$R/usr/share/locale"
# An RPM node has no apt-get: the executor must find dnf.
mv "$R/usr/bin/apt-get" "$R/usr/lib/cupcake-standins/apt-get"
# Debian's dnf-plugins-core enables a `local` plugin RHEL does not have (it wants its own repo).
sed -i '0,/^enabled *=.*/s//enabled = false/' "$R/etc/dnf/plugins/local.conf"

. "$HERE/standins.sh"

build_rpm() { # name version release binary generator [provides]
  local name=$1 ver=$2 rel=$3 bin=$4 gen=$5 provides=${6:-}
  local src="$name-$ver-$rel.bin"
  if [[ -n "$gen" ]]; then "$gen" "$ver" >"$R$B/SOURCES/$src"; fi
  {
    echo "Name: $name"
    echo "Version: $ver"
    echo "Release: $rel"
    echo "Summary: stand-in $name $ver for the CUPCAKE kubeadm executor tests"
    echo "License: Apache-2.0"
    echo "AutoReqProv: no"
    [[ -z "$provides" ]] || echo "Provides: $provides"
    echo "%global __os_install_post %{nil}"
    echo "%global _build_id_links none"
    echo "%description"
    echo "Records each call in /var/log/cupcake-standins/calls.log and prints its version."
    echo "%install"
    if [[ -n "$gen" ]]; then
      echo "install -D -m 0755 %{_sourcedir}/$src %{buildroot}/usr/bin/$bin"
      echo "%files"
      echo "/usr/bin/$bin"
    else
      echo "mkdir -p %{buildroot}/etc"
      echo "echo 'CUPCAKE stand-in release $ver' >%{buildroot}/etc/cupcake-release"
      echo "%files"
      echo "/etc/cupcake-release"
    fi
  } >"$R$B/SPECS/$name-$ver-$rel.spec"
  in_root "$R" rpmbuild --quiet -bb --define "_topdir $B" "$B/SPECS/$name-$ver-$rel.spec" >>"$R$B/rpmbuild.log" 2>&1 ||
    { cat "$R$B/rpmbuild.log" >&2; die "rpmbuild $name-$ver-$rel failed"; }
}

log "building the stand-in rpms"
for v in "${K8S_VERSIONS[@]}"; do
  build_rpm kubeadm "$v" "$K8S_RELEASE" kubeadm standin_kubeadm
  build_rpm kubelet "$v" "$K8S_RELEASE" kubelet standin_kubelet
  build_rpm kubectl "$v" "$K8S_RELEASE" kubectl standin_kubectl
done
for v in "${CONTAINERD_VERSIONS[@]}"; do
  build_rpm containerd.io "${v%-*}" "${v#*-}" containerd standin_containerd
done
build_rpm cupcake-release 9.6 1 "" "" 'system-release(releasever) = 9'
ARCH="$(in_root "$R" rpm --eval '%_arch')"
RPMS="$R$B/RPMS/$ARCH"

for v in "${K8S_VERSIONS[@]}"; do
  repo="$R/srv/pkgs.k8s.io/core:/stable:/v${v%.*}/rpm"
  mkdir -p "$repo"
  cp "$RPMS"/kube{adm,let,ctl}-"$v-$K8S_RELEASE.$ARCH.rpm" "$repo/"
done
mkdir -p "$R/srv/docker-ce" "$R$BUNDLE_RPM"
cp "$RPMS"/containerd.io-*.rpm "$R/srv/docker-ce/"
cp "$RPMS"/kube{adm,let,ctl}-"1.34.2-$K8S_RELEASE.$ARCH.rpm" "$RPMS/containerd.io-1.7.28-1.$ARCH.rpm" "$R$BUNDLE_RPM/"
for d in "$R"/srv/pkgs.k8s.io/core:/stable:/v*/rpm "$R/srv/docker-ce" "$R$BUNDLE_RPM"; do
  in_root "$R" createrepo_c --quiet "${d#"$R"}" || die "createrepo_c ${d#"$R"} failed"
done

initial_minor="${INITIAL_K8S%.*}"
cat >"$R/etc/yum.repos.d/kubernetes.repo" <<EOF
[kubernetes]
name=Kubernetes
baseurl=file:///srv/pkgs.k8s.io/core:/stable:/v$initial_minor/rpm/
enabled=1
gpgcheck=0
gpgkey=file:///srv/pkgs.k8s.io/core:/stable:/v$initial_minor/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
EOF
cat >"$R/etc/yum.repos.d/docker-ce.repo" <<'EOF'
[docker-ce-stable]
name=Docker CE Stable
baseurl=file:///srv/docker-ce/
enabled=1
gpgcheck=0
EOF

standin_systemctl >"$R/usr/bin/systemctl"
chmod 0755 "$R/usr/bin/systemctl"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  cat >"$R/etc/kubernetes/manifests/$c.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $c
  namespace: kube-system
spec:
  containers:
  - name: $c
    image: registry.k8s.io/$c:v$INITIAL_K8S
EOF
done
echo "# kubelet configuration written by kubeadm v$INITIAL_K8S init" >"$R/var/lib/kubelet/config.yaml"

log "installing kubeadm, kubelet, kubectl $INITIAL_K8S-$K8S_RELEASE and containerd.io $INITIAL_CONTAINERD in the root"
{ in_root "$R" rpm -i "$B/RPMS/$ARCH/cupcake-release-9.6-1.$ARCH.rpm" &&
  in_root "$R" dnf install -y --disableexcludes=kubernetes "kubeadm-$INITIAL_K8S-$K8S_RELEASE" \
    "kubelet-$INITIAL_K8S-$K8S_RELEASE" "kubectl-$INITIAL_K8S-$K8S_RELEASE" "containerd.io-$INITIAL_CONTAINERD" &&
  in_root "$R" dnf versionlock add kubeadm kubelet kubectl; } >"$R$B/dnf.log" 2>&1 ||
  { cat "$R$B/dnf.log" >&2; die "dnf install in the root failed"; }
grep -q 'Unable to detect release version' "$R$B/dnf.log" && { cat "$R$B/dnf.log" >&2; die "dnf did not detect \$releasever from cupcake-release"; }
in_root "$R" systemctl start containerd
in_root "$R" systemctl start kubelet
in_root "$R" dnf clean all >/dev/null
[[ "$(in_root "$R" kubeadm version -o short)" == "v$INITIAL_K8S" ]] || die "kubeadm in the root does not answer v$INITIAL_K8S"
[[ "$(in_root "$R" rpm -q --qf '%{VERSION}-%{RELEASE}\n' kubeadm)" == "$INITIAL_K8S-$K8S_RELEASE" ]] || die "rpm -q kubeadm is not $INITIAL_K8S-$K8S_RELEASE"
in_root "$R" dnf versionlock list 2>/dev/null | grep -q "^kubelet-0:$INITIAL_K8S-$K8S_RELEASE" || die "versionlock not set in the root"
! in_root "$R" sh -c 'command -v apt-get' >/dev/null || die "apt-get still found in the root"
: >"$R/var/log/cupcake-standins/calls.log"
rm -rf "${R:?}$B"

rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
touch "$OUT/.complete"
for old in "$CACHE_ROOT/dnf-root/$SUITE"-*; do
  [[ "$old" == "$OUT" || "$old" == "$TOOLS" || "$old" == *.log || ! -d "$old" ]] || rm -rf "$old"
done
log "ready in $((SECONDS - start))s: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
