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
#     /etc/apt/keyrings/kubernetes-apt-keyring.gpg  the repositories' key (made here with gpg)
#     /etc/apt/sources.list.d/kubernetes.list     deb [signed-by=…] file:/srv/pkgs.k8s.io/core:/stable:/v1.33/deb/ /
#     /etc/kubernetes/manifests/kube-*.yaml       static pod manifests with image tag v1.33.4
#     /usr/bin/systemctl                          stand-in: records calls, keeps unit state in
#                                                 /var/lib/cupcake-standins/systemd/
#   kubeadm, kubelet, kubectl 1.33.4-1.1 and containerd.io 1.7.24-1 installed, the three held.
#
# Every stand-in binary appends "<name>@<version> <args>" to /var/log/cupcake-standins/calls.log
# and prints its version like the real one (`kubeadm version -o short`, `kubelet --version`,
# `kubectl version --client -o json`). The stand-in kubeadm refuses `upgrade apply` to a version
# above its own (as kubeadm does), rewrites the static pod manifests' image tags on `upgrade
# apply`/`upgrade node`, and fails both when /etc/cupcake-standins/fail-kubeadm-upgrade exists.
#
# Tests copy rootfs/ (cp -a --reflink=auto) and never touch the cache. The cache key <hash> is
# this script's own SHA-256: any change here rebuilds the root (the debootstrap base is kept).
#
# Usage: debian-root.sh [--print-dir] [--force]
#   --print-dir   print the rootfs directory (built or not) and exit
#   --force       rebuild the root (not the debootstrap base)
#
# Needs root (debootstrap, chroot). Installs debootstrap, dpkg-dev and gpg with apt-get when
# missing. The Debian mirror is the one apt already uses (/etc/apt/sources.list*), the suite the
# machine's own (override: CUPCAKE_DEBIAN_SUITE, CUPCAKE_DEBIAN_MIRROR).
# Environment: CUPCAKE_HARNESS_CACHE (default ~/.cache/cupcake-harness).
set -euo pipefail

CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
SUITE="${CUPCAKE_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
HASH="$(sha256sum "$0" | cut -c1-12)"
BASE="$CACHE_ROOT/debian-base/$SUITE"
OUT="$CACHE_ROOT/debian-root/$SUITE-$HASH"
ROOTFS="$OUT/rootfs"
K8S_VERSIONS=(1.33.4-1.1 1.33.5-1.1 1.34.1-1.1 1.34.2-1.1)
CONTAINERD_VERSIONS=(1.7.24-1 1.7.28-1)
INITIAL_K8S=1.33.4-1.1
INITIAL_CONTAINERD=1.7.24-1
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg

log() { printf '[debian-root.sh] %s\n' "$*"; }
die() { printf '[debian-root.sh] ERROR: %s\n' "$*" >&2; exit 1; }

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

calls_log_line='mkdir -p /var/log/cupcake-standins; echo "$NAME@$V $*" >>/var/log/cupcake-standins/calls.log'

standin_kubeadm() { # version
  cat <<EOF
#!/bin/sh
# Stand-in kubeadm $1 (CUPCAKE test harness): records its calls, prints its version.
NAME=kubeadm V=$1
$calls_log_line
EOF
  cat <<'EOF'
manifests="/etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/manifests/kube-controller-manager.yaml /etc/kubernetes/manifests/kube-scheduler.yaml"
retag() { # tag
  for m in $manifests; do
    [ -f "$m" ] && sed -i "s#^\(\s*image: .*\):v[0-9][0-9.]*\$#\1:$1#" "$m"
  done
  return 0
}
failing() {
  if [ -e /etc/cupcake-standins/fail-kubeadm-upgrade ]; then
    echo "[upgrade] Reading configuration from the cluster..."
    echo "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"$1\"..."
    echo "error execution phase control-plane: couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: stand-in failure (/etc/cupcake-standins/fail-kubeadm-upgrade exists)" >&2
    exit 1
  fi
}
newer() { # is $1 (vX.Y.Z) above $2 (vX.Y.Z)?
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "${1#v}" "${2#v}" | sort -V | tail -n1)" = "${1#v}" ]
}
case "$1 $2" in
  "version -o"|"version --output") [ "$3" = short ] && { echo "v$V"; exit 0; } ;;
  "version "*) echo "kubeadm version: &version.Info{Major:\"1\", GitVersion:\"v$V\"}"; exit 0 ;;
  "upgrade plan")
    target="${3:-v$V}"
    if newer "$target" "v$V"; then
      echo "[upgrade/versions] FATAL: the --version argument is invalid: Specified version to upgrade to \"$target\" is higher than the kubeadm version \"v$V\". Upgrade kubeadm first using the tool you used to install kubeadm" >&2
      exit 1
    fi
    echo "[upgrade/versions] Target version: $target"
    echo "You can now apply the upgrade by executing the following command:"
    echo "	kubeadm upgrade apply $target"
    exit 0 ;;
  "upgrade apply")
    target="$3"
    case " $* " in *" --yes "*|*" -y "*) ;; *) echo "[upgrade] Are you sure you want to proceed? [y/N]: aborted (no --yes)" >&2; exit 1 ;; esac
    if newer "$target" "v$V"; then
      echo "[upgrade/version] FATAL: Specified version to upgrade to \"$target\" is higher than the kubeadm version \"v$V\". Upgrade kubeadm first using the tool you used to install kubeadm" >&2
      exit 1
    fi
    failing "$target"
    retag "$target"
    echo "[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"$target\"."
    exit 0 ;;
  "upgrade node")
    failing "v$V"
    retag "v$V"
    echo "# kubelet configuration written by kubeadm v$V upgrade node" >/var/lib/kubelet/config.yaml
    echo "[upgrade] The configuration for this node was successfully upgraded!"
    exit 0 ;;
esac
echo "stand-in kubeadm: unsupported call: $*" >&2
exit 1
EOF
}

standin_kubelet() {
  cat <<EOF
#!/bin/sh
# Stand-in kubelet $1 (CUPCAKE test harness).
NAME=kubelet V=$1
$calls_log_line
EOF
  cat <<'EOF'
[ "$1" = --version ] && { echo "Kubernetes v$V"; exit 0; }
echo "stand-in kubelet: unsupported call: $*" >&2
exit 1
EOF
}

standin_kubectl() {
  cat <<EOF
#!/bin/sh
# Stand-in kubectl $1 (CUPCAKE test harness).
NAME=kubectl V=$1
$calls_log_line
EOF
  cat <<'EOF'
case "$*" in
  "version --client -o json"|"version --client --output=json"|"version --client --output json")
    printf '{\n  "clientVersion": {\n    "major": "1",\n    "gitVersion": "v%s",\n    "platform": "linux/amd64"\n  },\n  "kustomizeVersion": "v5.7.1"\n}\n' "$V"; exit 0 ;;
  "version --client") echo "Client Version: v$V"; exit 0 ;;
esac
echo "stand-in kubectl: unsupported call: $*" >&2
exit 1
EOF
}

standin_containerd() {
  cat <<EOF
#!/bin/sh
# Stand-in containerd $1 (CUPCAKE test harness).
NAME=containerd V=$1
$calls_log_line
EOF
  cat <<'EOF'
[ "$1" = --version ] && { echo "containerd containerd.io $V"; exit 0; }
echo "stand-in containerd: unsupported call: $*" >&2
exit 1
EOF
}

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

initial_minor="${INITIAL_K8S%.*-*}"
echo "deb [signed-by=$KEYRING] file:/srv/pkgs.k8s.io/core:/stable:/v$initial_minor/deb/ /" \
  >"$R/etc/apt/sources.list.d/kubernetes.list"
echo "deb [signed-by=$KEYRING] file:/srv/containerd/ ./" >"$R/etc/apt/sources.list.d/containerd.list"

# systemd stand-in: records calls, keeps which units run (and since when, with which version).
cat >"$R/usr/bin/systemctl" <<'EOF'
#!/bin/sh
# Stand-in systemctl (CUPCAKE test harness): records its calls; unit state in files.
echo "systemctl $*" >>/var/log/cupcake-standins/calls.log
S=/var/lib/cupcake-standins/systemd
quiet=0
if [ "$1" = --quiet ] || [ "$1" = -q ]; then quiet=1; shift; fi
cmd=$1; shift
if [ "$1" = --quiet ] || [ "$1" = -q ]; then quiet=1; shift; fi
unit=${1%.service}
case "$cmd" in
  daemon-reload) date -u +%s >"$S/daemon-reloaded"; exit 0 ;;
  restart|start)
    [ -n "$unit" ] || { echo "systemctl $cmd: no unit" >&2; exit 1; }
    if [ -e "/etc/cupcake-standins/fail-restart-$unit" ]; then
      echo "Job for $unit.service failed because the control process exited with error code." >&2; exit 1
    fi
    if command -v "$unit" >/dev/null 2>&1; then "$unit" --version >"$S/$unit.active" 2>/dev/null || echo active >"$S/$unit.active"
    else echo active >"$S/$unit.active"; fi
    exit 0 ;;
  stop) rm -f "$S/$unit.active"; exit 0 ;;
  is-active)
    if [ -f "$S/$unit.active" ]; then [ $quiet = 1 ] || echo active; exit 0; fi
    [ $quiet = 1 ] || echo inactive; exit 3 ;;
esac
echo "stand-in systemctl: unsupported call: $cmd $*" >&2
exit 1
EOF
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
