# Shared fixtures of the default pack's tests: a healthy 3 + 3 node cluster
# going 1.33.4 -> 1.34.2 inside its window. Tests override parts with object.union.
package cupcake_test

import data.cupcake

node(name, role) := {"name": name, "role": role, "kubeletVersion": "1.33.4", "ready": true, "unschedulable": false, "inScope": true, "planned": true}

base := {
	"plan": {
		"hops": [{"from": "1.33.4", "to": "1.34.2"}],
		"stages": [
			{"kind": "backup", "version": "1.34.2", "batches": [["cp-1"]]},
			{"kind": "control-plane", "version": "1.34.2", "batches": [["cp-1"], ["cp-2"], ["cp-3"]]},
			{"kind": "workers", "version": "1.34.2", "batches": [["worker-1"], ["worker-2"], ["worker-3"]]},
		],
		"estimate": {"seconds": 3360},
	},
	"cluster": {
		"name": "test",
		"target": "1.34.2",
		"upToDate": false,
		"upgrade": "minor",
		"controlPlane": "1.33.4",
		"apiservers": {"cp-1": "1.33.4", "cp-2": "1.33.4", "cp-3": "1.33.4"},
		"kubelets": {"1.33.4": 6},
		"allowPrerelease": "none",
		"force": [],
		"strategy": "rolling",
		"nodes": [
			node("cp-1", "control-plane"), node("cp-2", "control-plane"), node("cp-3", "control-plane"),
			node("worker-1", "worker"), node("worker-2", "worker"), node("worker-3", "worker"),
		],
		"pdbs": [{
			"namespace": "shop", "name": "web", "maxUnavailable": 1, "disruptionsAllowed": 1,
			"expectedPods": 3, "currentHealthy": 3, "desiredHealthy": 2, "pods": 3,
			"nodesToDrain": ["worker-1", "worker-2", "worker-3"],
		}],
		"timeline": [
			timeline(0, "backup", "1.33.4", "1.33.4", "1.33.4", "1.33.4"),
			timeline(1, "control-plane", "1.34.2", "1.34.2", "1.33.4", "1.34.2"),
			timeline(2, "workers", "1.34.2", "1.34.2", "1.34.2", "1.34.2"),
		],
	},
	"schedule": {
		"configured": true, "suspended": false, "windows": 1, "inWindow": true,
		"activeWindow": {"index": 0, "start": "2026-11-28T01:00:00Z", "end": "2026-11-28T05:00:00Z", "mustFinish": false},
		"remainingSeconds": 9000,
		"nextWindow": {"index": 0, "start": "2026-12-05T01:00:00Z", "end": "2026-12-05T05:00:00Z", "mustFinish": false},
		"activeExclusions": [],
	},
	"source": {"repository": null, "revision": null, "path": "clusters/test/cluster.yaml"},
	"now": "2026-11-28T02:30:00Z",
	"config": {},
}

timeline(i, kind, amin, amax, kmin, kmax) := {
	"stage": i, "kind": kind, "version": "1.34.2",
	"apiserverMin": amin, "apiserverMax": amax, "kubeletMin": kmin, "kubeletMax": kmax,
	"oldestKubelets": ["worker-1"], "newestKubelets": ["cp-1"],
}

# Ids of a finding set.
ids(findings) := {f.id | some f in findings}

# All findings of the pack for an input, keyed by kind.
denies(inp) := x if {
	d := cupcake.deny with input as inp
	x := ids(d)
}

defers(inp) := x if {
	d := cupcake.defer with input as inp
	x := ids(d)
}

warns(inp) := x if {
	d := cupcake.warn with input as inp
	x := ids(d)
}

finding(set, id) := f if {
	some f in set
	f.id == id
}

test_base_is_allowed if {
	count(cupcake.deny) == 0 with input as base
	count(cupcake.defer) == 0 with input as base
	count(cupcake.warn) == 0 with input as base
}

test_up_to_date_is_quiet if {
	inp := object.union(base, {"cluster": {"upToDate": true, "upgrade": "none"}, "schedule": {"suspended": true, "inWindow": false}})
	count(denies(inp)) == 0
	count(defers(inp)) == 0
}
