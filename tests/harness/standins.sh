# Stand-in binaries of the kubeadm executor's test roots (sourced by debian-root.sh and
# dnf-root.sh; both hash this file into their cache key). Each generator prints a shell
# script on stdout.
#
# Every stand-in appends "<name>@<version> <args>" to /var/log/cupcake-standins/calls.log
# and prints its version like the real one (`kubeadm version -o short`, `kubelet --version`,
# `kubectl version --client -o json`). The stand-in kubeadm refuses `upgrade apply` to a
# version above its own (as kubeadm does), rewrites the static pod manifests' image tags on
# `upgrade apply`/`upgrade node`, fails both when /etc/cupcake-standins/fail-kubeadm-upgrade
# exists, and, while /etc/cupcake-standins/block-kubeadm-upgrade exists, writes its PID to
# /var/log/cupcake-standins/kubeadm-blocked and waits before changing anything (so a test
# can kill the agent in the middle of the step).

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
  while [ -e /etc/cupcake-standins/block-kubeadm-upgrade ]; do
    echo $$ >/var/log/cupcake-standins/kubeadm-blocked
    sleep 0.1
  done
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


standin_systemctl() {
  cat <<'EOF'
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
}
