package cupcake_test

import data.cupcake

workers_down(names) := object.union(base, {"cluster": {"nodes": array.concat(
	[node("cp-1", "control-plane"), node("cp-2", "control-plane"), node("cp-3", "control-plane")],
	[object.union(node(n, "worker"), {"ready": false}) | some n in names],
)}})

test_not_ready_workers_defer_with_names if {
	f := finding(cupcake.defer, "readiness.nodes-not-ready") with input as workers_down(["worker-2", "worker-1"])
	contains(f.msg, "2 in-scope node(s) NotReady: worker-1, worker-2")
}

test_long_lists_are_abbreviated if {
	f := finding(cupcake.defer, "readiness.nodes-not-ready") with input as workers_down(["w-1", "w-2", "w-3", "w-4", "w-5", "w-6", "w-7"])
	contains(f.msg, "and 2 more")
}

test_out_of_scope_workers_are_ignored if {
	inp := object.union(base, {"cluster": {"nodes": [object.union(node("worker-9", "worker"), {"ready": false, "inScope": false})]}})
	not "readiness.nodes-not-ready" in defers(inp)
}

test_config_tolerates_some_not_ready if {
	inp := object.union(workers_down(["worker-1"]), {"config": {"readiness": {"maxNotReady": 1}}})
	not "readiness.nodes-not-ready" in defers(inp)
}
