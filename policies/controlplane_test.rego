package cupcake_test

import data.cupcake

cp_not_ready := object.union(base, {"cluster": {"nodes": array.concat(
	[object.union(node("cp-1", "control-plane"), {"ready": false}), node("cp-2", "control-plane"), node("cp-3", "control-plane")],
	[node("worker-1", "worker")],
)}})

test_not_ready_control_plane_denies if {
	f := finding(cupcake.deny, "controlplane.not-ready") with input as cp_not_ready
	not f.forceable
	contains(f.msg, "cp-1")
}

test_quorum_needs_all_three_ready if {
	"controlplane.quorum" in denies(cp_not_ready)
}

test_five_members_tolerate_one_down if {
	nodes := [object.union(node("cp-1", "control-plane"), {"ready": false}), node("cp-2", "control-plane"), node("cp-3", "control-plane"), node("cp-4", "control-plane"), node("cp-5", "control-plane")]
	inp := object.union(base, {"cluster": {"nodes": nodes}})
	not "controlplane.quorum" in denies(inp)
	"controlplane.not-ready" in denies(inp)
}

test_control_plane_one_at_a_time if {
	inp := object.union(base, {"plan": {"stages": [{"kind": "control-plane", "version": "1.34.2", "batches": [["cp-1", "cp-2"], ["cp-3"]]}]}})
	f := finding(cupcake.deny, "controlplane.quorum") with input as inp
	contains(f.msg, "cp-1, cp-2")
}

test_two_members_warn if {
	inp := object.union(base, {"cluster": {"nodes": [node("cp-1", "control-plane"), node("cp-2", "control-plane")]}})
	"controlplane.two-members" in warns(inp)
	not "controlplane.quorum" in denies(inp)
}

test_workers_only_plan_ignores_quorum if {
	inp := object.union(cp_not_ready, {"plan": {"stages": [{"kind": "workers", "version": "1.34.2", "batches": [["worker-1"]]}]}})
	not "controlplane.quorum" in denies(inp)
}
