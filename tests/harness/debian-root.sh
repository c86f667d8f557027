#!/usr/bin/env bash
# Builds (once) and caches a Debian root that looks like a kubeadm node at 1.33.4, for the
# kubeadm executor's tests (agent/tests/kubeadm.rs): the real apt-get, apt-cache, apt-mark and
# dpkg resolve, install and hold packages in it, under chroot.
#
#   <cache>/debian-base/<suite>/                  debootstrap --variant=minbase, untouched
#   <cache>/debian-root/<suite>-<hash>/rootfs/    a copy of it, plus:
#     /srv/pkgs.k8s.io/core:/stable:/v1.33/deb/   signed flat apt repositories laid out like
#     /srv/pkgs.k8s.io/core:/stable:/v1.34/deb/   pkgs.k8s.io's, of stand-in kubeadm, kubelet and
#                                                 kubectl at 1.33.4-1.1, 1.33.5-1.1, 1.34.1-1.1,
#                                                 1.34.2-1.1 (built with dpkg-deb)
#     /srv/containerd/                            containerd.io 1.7.24-1 and 1.7.28-1
#     /var/lib/cupcake/bundle/apt/                an air-gapped bundle's mirror: a flat repository of
#                                                 the 1.34.2-1.1 packages and containerd.io 1.7.28-1,
#                                                 signed by a second key (/srv/bundle/keyring.gpg, not
#                                                 trusted by apt until a bundle's keyring.gpg is written)
#     /etc/apt/keyrings/kubernetes-apt-keyring.gpg  the repositories' key (made here with gpg)
#     /etc/apt/sources.list.d/kubernetes.list     deb [signed-by=…] file:/srv/pkgs.k8s.io/core:/stable:/v1.33/deb/ /
#     /etc/kubernetes/manifests/kube-*.yaml       static pod manifests with image tag v1.33.4
#     /usr/bin/systemctl                          stand-in: records calls, keeps unit state in
#                                                 /var/lib/cupcake-standins/systemd/
#   kubeadm, kubelet, kubectl 1.33.4-1.1 and containerd.io 1.7.24-1 installed, the three held.
#
# The stand-in binaries (what they record and answer) are described in standins.sh.
#
# Tests copy rootfs/ (cp -a --reflink=auto) and never touch the cache. The cache key <hash> is
# the SHA-256 of this script and standins.sh: any change there rebuilds the root (the
# debootstrap base is kept).
#
# Usage: debian-root.sh [--print-dir] [--base] [--force]
#   --print-dir   print the rootfs directory (built or not) and exit
#   --base        only make sure the debootstrap base exists, print its directory (dnf-root.sh)
#   --force       rebuild the root (not the debootstrap base)
#
# Needs root (debootstrap, chroot). Installs debootstrap, dpkg-dev and gpg with apt-get when
# missing. The Debian mirror is the one apt already uses (/etc/apt/sources.list*), the suite the
# machine's own (override: CUPCAKE_DEBIAN_SUITE, CUPCAKE_DEBIAN_MIRROR).
# Environment: CUPCAKE_HARNESS_CACHE (default ~/.cache/cupcake-harness).
set -euo pipefail

CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
SUITE="${CUPCAKE_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
HERE="$(cd "$(dirname "$0")" && pwd)"
HASH="$(cat "$0" "$HERE/standins.sh" | sha256sum | cut -c1-12)"
BASE="$CACHE_ROOT/debian-base/$SUITE"
OUT="$CACHE_ROOT/debian-root/$SUITE-$HASH"
ROOTFS="$OUT/rootfs"
K8S_VERSIONS=(1.33.4-1.1 1.33.5-1.1 1.34.1-1.1 1.34.2-1.1)
CONTAINERD_VERSIONS=(1.7.24-1 1.7.28-1)
INITIAL_K8S=1.33.4-1.1
INITIAL_CONTAINERD=1.7.24-1
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
BUNDLE_APT=/var/lib/cupcake/bundle/apt

log() { printf '[debian-root.sh] %s\n' "$*" >&2; }
die() { printf '[debian-root.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
base_only=0
for arg in "$@"; do
  case "$arg" in
    --print-dir) printf '%s\n' "$ROOTFS"; exit 0 ;;
    --base) base_only=1 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

if ((base_only)) && [[ -f "$BASE/.complete" ]]; then
  printf '%s\n' "$BASE"
  exit 0
fi
if ((force == 0 && base_only == 0)) && [[ -f "$OUT/.complete" ]]; then
  log "cached: $ROOTFS"
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "needs root (debootstrap and chroot)"
start=$SECONDS

need=()
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || need+=(debootstrap)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v gpg >/dev/null || need+=(gpg)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

# The mirror apt already uses for this suite: deb822 .sources first, then one-line lists.
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f" | head -n1
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == suite) print $i; break } }'
}
MIRROR="${CUPCAKE_DEBIAN_MIRROR:-$(mirror 2>/dev/null | head -n1 || true)}"
[[ -n "$MIRROR" ]] || die "no Debian mirror for $SUITE in /etc/apt/sources.list*: set CUPCAKE_DEBIAN_MIRROR"

# 1. The debootstrap base, once per suite.
if [[ ! -f "$BASE/.complete" ]]; then
  log "debootstrap --variant=minbase $SUITE from $MIRROR"
  rm -rf "$BASE.tmp"
  mkdir -p "$(dirname "$BASE")"
  debootstrap --variant=minbase "$SUITE" "$BASE.tmp" "$MIRROR" >"$CACHE_ROOT/debian-base/$SUITE.log" 2>&1 ||
    { tail -n 20 "$CACHE_ROOT/debian-base/$SUITE.log" >&2; die "debootstrap failed (log: $CACHE_ROOT/debian-base/$SUITE.log)"; }
  rm -rf "$BASE"
  mv "$BASE.tmp" "$BASE"
  touch "$BASE/.complete"
  log "base ready in $((SECONDS - start))s"
fi
if ((base_only)); then
  printf '%s\n' "$BASE"
  exit 0
fi

# 2. The node: a copy of the base, the repositories, the stand-ins, the packages at 1.33.4.
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
cp -a --reflink=auto "$BASE" "$OUT.tmp/rootfs"
rm -f "$OUT.tmp/rootfs/.complete"
R="$OUT.tmp/rootfs"
B="$OUT.tmp/build"
mkdir -p "$B" "$R/etc/apt/keyrings" "$R/etc/cupcake-standins" "$R/var/log/cupcake-standins" \
  "$R/var/lib/cupcake-standins/systemd" "$R/etc/kubernetes/manifests" "$R/var/lib/kubelet"
ARCH="$(dpkg --print-architecture)"

# Only the local repositories: nothing in a test reaches a network.
: >"$R/etc/apt/sources.list"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$R/etc/apt/apt.conf.d/90cupcake-standins"

# The repositories' signing key, made here (like pkgs.k8s.io's Release.key, dearmored).
export GNUPGHOME="$B/gnupg"
mkdir -m 0700 -p "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'CUPCAKE stand-in repository <standins@cupcake.invalid>' rsa2048 sign never 2>/dev/null
gpg --batch --quiet --export >"$R$KEYRING"
chmod 0644 "$R$KEYRING"

. "$HERE/standins.sh"
build_deb() { # package version binary-name generator outdir
  local pkg=$1 ver=$2 bin=$3 gen=$4 dir="$B/pkg/$1_$2"
  mkdir -p "$dir/DEBIAN" "$dir/usr/bin"
  "$gen" "${ver%%-*}" >"$dir/usr/bin/$bin"
  chmod 0755 "$dir/usr/bin/$bin"
  cat >"$dir/DEBIAN/control" <<EOF
Package: $pkg
Version: $ver
Architecture: $ARCH
Maintainer: CUPCAKE test harness <standins@cupcake.invalid>
Section: admin
Priority: optional
Description: stand-in $pkg $ver for the CUPCAKE kubeadm executor tests
 Records each call in /var/log/cupcake-standins/calls.log and prints its version.
EOF
  # While /etc/cupcake-standins/block-dpkg-configure exists, configuring the package waits
  # (its PID in /var/log/cupcake-standins/dpkg-blocked): a test can kill the agent, apt-get
  # and dpkg in the middle of an install, leaving dpkg "interrupted".
  cat >"$dir/DEBIAN/postinst" <<'EOF'
#!/bin/sh
while [ -e /etc/cupcake-standins/block-dpkg-configure ]; do
  echo $$ >/var/log/cupcake-standins/dpkg-blocked
  sleep 0.1
done
exit 0
EOF
  chmod 0755 "$dir/DEBIAN/postinst"
  mkdir -p "$5"
  dpkg-deb --root-owner-group --build "$dir" "$5/${pkg}_${ver}_${ARCH}.deb" >/dev/null
}

# A signed flat repository (Packages, Packages.gz, Release, InRelease), like pkgs.k8s.io's.
index_repo() { # dir
  local d=$1
  (cd "$d" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages && gzip -9nk Packages)
  {
    echo "Origin: cupcake-standins"
    echo "Label: cupcake-standins"
    echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
    echo "SHA256:"
    for f in Packages Packages.gz; do
      printf ' %s %s %s\n' "$(sha256sum "$d/$f" | cut -d' ' -f1)" "$(stat -c %s "$d/$f")" "$f"
    done
  } >"$d/Release"
  gpg --batch --quiet --yes --clearsign -o "$d/InRelease" "$d/Release"
  gpg --batch --quiet --yes --armor --detach-sign -o "$d/Release.gpg" "$d/Release"
}

for v in "${K8S_VERSIONS[@]}"; do
  minor="${v%.*-*}"   # 1.34.2-1.1 -> 1.34
  repo="$R/srv/pkgs.k8s.io/core:/stable:/v$minor/deb"
  build_deb kubeadm "$v" kubeadm standin_kubeadm "$repo"
  build_deb kubelet "$v" kubelet standin_kubelet "$repo"
  build_deb kubectl "$v" kubectl standin_kubectl "$repo"
done
for d in "$R"/srv/pkgs.k8s.io/core:/stable:/v*/deb; do index_repo "$d"; done
for v in "${CONTAINERD_VERSIONS[@]}"; do
  build_deb containerd.io "$v" containerd standin_containerd "$R/srv/containerd"
done
index_repo "$R/srv/containerd"

# An air-gapped bundle's mirror (docs/host-steps.md, "Air-gapped bundle"): a flat repository of
# the 1.34.2 packages and containerd.io 1.7.28-1 signed by a second key whose keyring is not
# installed in the root: only the bundle's keyring.gpg (a copy in /srv/bundle/keyring.gpg) lets
# apt trust it.
mkdir -p "$R$BUNDLE_APT" "$R/srv/bundle"
cp "$R"/srv/pkgs.k8s.io/core:/stable:/v1.34/deb/*_1.34.2-1.1_*.deb "$R"/srv/containerd/containerd.io_1.7.28-1_*.deb "$R$BUNDLE_APT/"
( export GNUPGHOME="$B/gnupg-bundle"
  mkdir -m 0700 -p "$GNUPGHOME"
  gpg --batch --quiet --passphrase '' --quick-gen-key 'CUPCAKE stand-in bundle <bundle@cupcake.invalid>' rsa2048 sign never 2>/dev/null
  gpg --batch --quiet --export >"$R/srv/bundle/keyring.gpg"
  index_repo "$R$BUNDLE_APT" )

initial_minor="${INITIAL_K8S%.*-*}"
echo "deb [signed-by=$KEYRING] file:/srv/pkgs.k8s.io/core:/stable:/v$initial_minor/deb/ /" \
  >"$R/etc/apt/sources.list.d/kubernetes.list"
echo "deb [signed-by=$KEYRING] file:/srv/containerd/ ./" >"$R/etc/apt/sources.list.d/containerd.list"

# systemd stand-in: records calls, keeps which units run (and since when, with which version).
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
    image: registry.k8s.io/$c:v${INITIAL_K8S%-*}
EOF
done
echo "# kubelet configuration written by kubeadm v${INITIAL_K8S%-*} init" >"$R/var/lib/kubelet/config.yaml"

log "installing kubeadm, kubelet, kubectl $INITIAL_K8S and containerd.io $INITIAL_CONTAINERD in the root"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
in_root apt-get update -qq >"$B/apt.log" 2>&1 || { cat "$B/apt.log" >&2; die "apt-get update in the root failed"; }
in_root apt-get install -y -qq "kubeadm=$INITIAL_K8S" "kubelet=$INITIAL_K8S" "kubectl=$INITIAL_K8S" \
  "containerd.io=$INITIAL_CONTAINERD" >>"$B/apt.log" 2>&1 || { cat "$B/apt.log" >&2; die "apt-get install in the root failed"; }
in_root apt-mark hold kubeadm kubelet kubectl >/dev/null
in_root systemctl start containerd
in_root systemctl start kubelet
in_root apt-get clean
[[ "$(in_root kubeadm version -o short)" == "v${INITIAL_K8S%-*}" ]] || die "kubeadm in the root does not answer v${INITIAL_K8S%-*}"
[[ "$(in_root apt-mark showhold | tr '\n' ' ')" == "kubeadm kubectl kubelet " ]] || die "holds not set in the root"
: >"$R/var/log/cupcake-standins/calls.log"

rm -rf "$OUT.tmp/build"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
touch "$OUT/.complete"
# Older builds of this root (an earlier version of this script) are of no use any more.
for old in "$CACHE_ROOT/debian-root/$SUITE"-*; do
  [[ "$old" == "$OUT" || ! -d "$old" ]] || rm -rf "$old"
done
log "ready in $((SECONDS - start))s: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
