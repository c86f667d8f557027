# Node readiness: the upgrade waits for in-scope workers that are NotReady.
package cupcake

defer contains {"id": "readiness.nodes-not-ready", "msg": msg} if {
	upgrading
	names := sort([n.name | some n in input.cluster.nodes; n.role == "worker"; n.inScope; not n.ready])
	count(names) > object.get(input.config, ["readiness", "maxNotReady"], 0)
	msg := sprintf("%d in-scope node(s) NotReady: %s. The upgrade waits until they are Ready, or until they leave the cluster or nodeSelector", [count(names), list_names(names)])
}
