package cupcake_test

import data.cupcake

with_pdb(p) := object.union(base, {"cluster": {"pdbs": [object.union(base.cluster.pdbs[0], p)]}})

test_zero_disruptions_defers_naming_the_pdb if {
	f := finding(cupcake.defer, "pdb.zero-disruptions") with input as with_pdb({"disruptionsAllowed": 0, "currentHealthy": 2})
	contains(f.msg, "shop/web")
	contains(f.msg, "worker-1, worker-2, worker-3")
}

test_zero_disruptions_off_the_plan_is_ignored if {
	inp := with_pdb({"disruptionsAllowed": 0, "nodesToDrain": []})
	not "pdb.zero-disruptions" in defers(inp)
}

test_max_unavailable_zero_is_a_forceable_deny if {
	f := finding(cupcake.deny, "pdb.never-drainable") with input as with_pdb({"maxUnavailable": 0, "disruptionsAllowed": 0})
	f.forceable
	contains(f.msg, "shop/web")

	# the deny replaces the defer for the same budget
	not "pdb.zero-disruptions" in defers(with_pdb({"maxUnavailable": 0, "disruptionsAllowed": 0}))
}

test_min_available_all_replicas_is_never_drainable if {
	inp := json.remove(with_pdb({"minAvailable": 3, "disruptionsAllowed": 0}), ["cluster/pdbs/0/maxUnavailable"])
	"pdb.never-drainable" in denies(inp)
	pct := json.remove(with_pdb({"minAvailable": "100%", "disruptionsAllowed": 0}), ["cluster/pdbs/0/maxUnavailable"])
	"pdb.never-drainable" in denies(pct)
}

test_min_available_below_replicas_is_fine if {
	inp := json.remove(with_pdb({"minAvailable": 2}), ["cluster/pdbs/0/maxUnavailable"])
	not "pdb.never-drainable" in denies(inp)
	not "pdb.zero-disruptions" in defers(inp)
}

test_without_status_replicas_are_the_matched_pods if {
	p := json.remove(with_pdb({"minAvailable": 3}), ["cluster/pdbs/0/maxUnavailable", "cluster/pdbs/0/expectedPods", "cluster/pdbs/0/disruptionsAllowed"])
	"pdb.never-drainable" in denies(p)
}

no_status(p) := json.remove(with_pdb(p), ["cluster/pdbs/0/disruptionsAllowed", "cluster/pdbs/0/expectedPods", "cluster/pdbs/0/currentHealthy", "cluster/pdbs/0/desiredHealthy"])

test_zero_budget_without_status_defers if {
	f := finding(cupcake.defer, "pdb.zero-disruptions") with input as no_status({"budget": 0})
	contains(f.msg, "no PDB status")
}

test_budget_without_status_lets_the_drain_go if {
	not "pdb.zero-disruptions" in defers(no_status({"budget": 1}))
}
