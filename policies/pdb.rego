# PodDisruptionBudgets: a drain goes through the eviction API, so a PDB that
# allows no disruption stalls it.
package cupcake

# The selected workload's replicas: status.expectedPods, or the matched pods without a status.
replicas(p) := n if {
	n := object.get(p, "expectedPods", null)
	is_number(n)
} else := p.pods

# Budgets that can never allow an eviction, whatever the pods' health.
never_drainable(p) if p.maxUnavailable == 0

never_drainable(p) if p.maxUnavailable == "0%"

never_drainable(p) if p.minAvailable == "100%"

never_drainable(p) if {
	is_number(p.minAvailable)
	p.minAvailable >= replicas(p)
}

budget(p) := sprintf("minAvailable %v, maxUnavailable %v, %d replicas", [object.get(p, "minAvailable", "unset"), object.get(p, "maxUnavailable", "unset"), replicas(p)])

deny contains {"id": "pdb.never-drainable", "msg": msg, "forceable": true} if {
	upgrading
	some p in input.cluster.pdbs
	count(p.nodesToDrain) > 0
	never_drainable(p)
	msg := sprintf("PodDisruptionBudget %s/%s can never allow an eviction (%s) and covers pods on %d node(s) to drain: %s. Relax the budget or scale the workload above it; or force pdb.never-drainable and move those pods yourself", [p.namespace, p.name, budget(p), count(p.nodesToDrain), list_names(p.nodesToDrain)])
}

# Disruptions allowed now: the PDB's status, or the planner's estimate from the spec when
# the snapshot has no status (a hand-written snapshot must not fail open).
allowed_now(p) := n if {
	n := p.disruptionsAllowed
	is_number(n)
} else := object.get(p, "budget", 1)

health(p) := sprintf("%v of %v pods healthy", [p.currentHealthy, object.get(p, "expectedPods", "?")]) if {
	is_number(p.currentHealthy)
} else := "estimated from the spec: the snapshot has no PDB status"

defer contains {"id": "pdb.zero-disruptions", "msg": msg} if {
	upgrading
	some p in input.cluster.pdbs
	count(p.nodesToDrain) > 0
	allowed_now(p) <= 0
	not never_drainable(p)
	msg := sprintf("PodDisruptionBudget %s/%s allows 0 disruptions now (%s) and covers pods on %d node(s) to drain: %s. The upgrade waits until its pods are healthy again", [p.namespace, p.name, health(p), count(p.nodesToDrain), list_names(p.nodesToDrain)])
}
