# Kubernetes version skew, following kubeadm's upgrade policy: what kubeadm
# refuses outright (its Mandatory errors) is a deny that cannot be forced;
# what it lets through with --force (its Skippable errors) is a forceable deny.
package cupcake

# kubeadm upgrades one minor at a time: Mandatory for releases, Skippable for pre-releases.
deny contains {"id": "skew.minor-skip", "msg": msg, "forceable": forceable} if {
	upgrading
	some hop in input.plan.hops
	minor(hop.to) - minor(hop.from) > 1
	forceable := is_prerelease(hop.to)
	msg := sprintf("hop %s -> %s skips a minor version; kubeadm upgrades one minor at a time. Add the intermediate releases to versions.yaml so the plan hops through each minor", [hop.from, hop.to])
}

# kubeadm cannot downgrade a minor version (Mandatory).
deny contains {"id": "skew.minor-downgrade", "msg": msg} if {
	cp := input.cluster.controlPlane
	is_string(cp)
	major(input.cluster.target) == major(cp) # another major: planner.major-change
	minor(input.cluster.target) < minor(cp)
	msg := sprintf("target %s is an older minor than the control plane (%s); kubeadm cannot downgrade a minor. Restore from an etcd backup instead, or set kubernetesVersion back to %s or newer", [input.cluster.target, cp, cp])
}

deny contains {"id": "skew.minor-downgrade", "msg": msg} if {
	some hop in input.plan.hops
	minor(hop.to) < minor(hop.from)
	msg := sprintf("hop %s -> %s goes back a minor version; kubeadm cannot downgrade a minor", [hop.from, hop.to])
}

# Patch downgrades work but are unusual (Skippable).
deny contains {"id": "skew.patch-downgrade", "msg": msg, "forceable": true} if {
	cp := input.cluster.controlPlane
	is_string(cp)
	minor(input.cluster.target) == minor(cp)
	semver.compare(input.cluster.target, cp) < 0
	msg := sprintf("target %s is older than the control plane (%s); if you mean to downgrade the patch release, add skew.patch-downgrade to force in cluster.yaml", [input.cluster.target, cp])
}

# Pre-releases only with allowPrerelease (kubeadm's --allow-release-candidate-upgrades /
# --allow-experimental-upgrades; cluster.yaml's allowPrerelease is that opt-in, so forcing is not offered).
prerelease_allowed(_) if input.cluster.allowPrerelease == "all"

prerelease_allowed(v) if {
	input.cluster.allowPrerelease == "rc"
	startswith(split(v, "-")[1], "rc")
}

deny contains {"id": "skew.prerelease", "msg": msg} if {
	t := input.cluster.target
	is_prerelease(t)
	not prerelease_allowed(t)
	want := {true: "rc", false: "all"}[startswith(split(t, "-")[1], "rc")]
	msg := sprintf("target %s is a pre-release; set allowPrerelease: %s in cluster.yaml to accept it", [t, want])
}

# At every stage: no kubelet newer than the oldest kube-apiserver.
# A control-plane node whose kube-apiserver already runs its kubelet's version is a hop in
# progress (kubeadm upgrades a control-plane node's kubelet with its static pods): finishing
# that hop is the fix, not a violation.
mid_hop_control_plane(name, v) if input.cluster.apiservers[name] == v

deny contains {"id": "skew.kubelet-newer-than-apiserver", "msg": msg} if {
	upgrading
	some t in input.cluster.timeline
	is_string(t.apiserverMin)
	minor(t.kubeletMax) > minor(t.apiserverMin)
	offenders := [n | some n in t.newestKubelets; not mid_hop_control_plane(n, t.kubeletMax)]
	count(offenders) > 0
	msg := sprintf("after stage %d (%s %s) kubelet %s on %s would be newer than the oldest kube-apiserver (%s), which the skew policy forbids; upgrade the control plane before those nodes", [t.stage + 1, t.kind, t.version, t.kubeletMax, list_names(offenders), t.apiserverMin])
}

# At every stage: kubelets at most 3 minors older than kube-apiserver (2 below 1.25).
# kubeadm reports too-old kubelets as Skippable.
max_kubelet_lag(v) := 2 if minor(v) < 25

max_kubelet_lag(v) := 3 if minor(v) >= 25

deny contains {"id": "skew.kubelet-too-old", "msg": msg, "forceable": true} if {
	upgrading
	some t in input.cluster.timeline
	is_string(t.apiserverMax)
	lag := minor(t.apiserverMax) - minor(t.kubeletMin)
	lag > max_kubelet_lag(t.kubeletMin)
	msg := sprintf("after stage %d (%s %s) kubelet %s on %s would be %d minors behind kube-apiserver %s (at most %d allowed); upgrade those nodes in an earlier hop or widen nodeSelector, or force skew.kubelet-too-old", [t.stage + 1, t.kind, t.version, t.kubeletMin, list_names(t.oldestKubelets), lag, t.apiserverMax, max_kubelet_lag(t.kubeletMin)])
}

# HA control planes: kube-apiservers within one minor of each other at every stage.
deny contains {"id": "skew.apiserver-skew", "msg": msg} if {
	upgrading
	some t in input.cluster.timeline
	is_string(t.apiserverMin)
	minor(t.apiserverMax) - minor(t.apiserverMin) > 1
	msg := sprintf("after stage %d (%s %s) kube-apiservers would span %s to %s, more than one minor apart; finish the interrupted control-plane upgrade first", [t.stage + 1, t.kind, t.version, t.apiserverMin, t.apiserverMax])
}
