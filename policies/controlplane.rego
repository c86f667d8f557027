# Control plane safety: etcd quorum and readiness of control-plane nodes.
package cupcake

cp_nodes := [n | some n in input.cluster.nodes; n.role == "control-plane"]

cp_ready := count([n | some n in cp_nodes; n.ready])

touches_control_plane if {
	some s in input.plan.stages
	s.kind == "control-plane"
}

deny contains {"id": "controlplane.not-ready", "msg": msg} if {
	upgrading
	names := sort([n.name | some n in cp_nodes; not n.ready])
	count(names) > 0
	msg := sprintf("control-plane node(s) %s are NotReady; upgrading now risks etcd quorum and the API. Bring them back (kubectl describe node) or remove them from the cluster first", [list_names(names)])
}

deny contains {"id": "controlplane.quorum", "msg": msg} if {
	upgrading
	some s in input.plan.stages
	s.kind == "control-plane"
	some b in s.batches
	count(b) > 1
	msg := sprintf("a control-plane batch upgrades %s together; control-plane nodes must go one at a time to keep etcd quorum", [list_names(b)])
}

# With n >= 3 members etcd needs floor(n/2)+1 healthy while one is being upgraded.
deny contains {"id": "controlplane.quorum", "msg": msg} if {
	upgrading
	touches_control_plane
	n := count(cp_nodes)
	n >= 3
	quorum := floor(n / 2) + 1
	cp_ready - 1 < quorum
	msg := sprintf("only %d of %d control-plane nodes are Ready; taking one down for its upgrade leaves %d, below etcd's quorum of %d. Fix the NotReady members first", [cp_ready, n, cp_ready - 1, quorum])
}

warn contains {"id": "controlplane.two-members", "msg": "the cluster has two control-plane nodes: etcd loses quorum while either is upgraded and the API is unavailable meanwhile; run three (or one)"} if {
	upgrading
	touches_control_plane
	count(cp_nodes) == 2
}
