package cupcake_test

import data.cupcake

test_minor_skip_is_mandatory if {
	inp := object.union(base, {"plan": {"hops": [{"from": "1.32.4", "to": "1.34.2"}]}})
	f := finding(cupcake.deny, "skew.minor-skip") with input as inp
	not f.forceable
	contains(f.msg, "versions.yaml")
}

test_minor_skip_to_prerelease_is_forceable if {
	inp := object.union(base, {"plan": {"hops": [{"from": "1.33.4", "to": "1.35.0-rc.1"}]}})
	f := finding(cupcake.deny, "skew.minor-skip") with input as inp
	f.forceable
}

test_one_minor_per_hop_passes if {
	inp := object.union(base, {"plan": {"hops": [{"from": "1.32.4", "to": "1.33.5"}, {"from": "1.33.5", "to": "1.34.2"}]}})
	not "skew.minor-skip" in denies(inp)
}

test_minor_downgrade_is_mandatory if {
	inp := object.union(base, {"cluster": {"target": "1.32.9"}, "plan": {"hops": [], "stages": []}})
	f := finding(cupcake.deny, "skew.minor-downgrade") with input as inp
	not f.forceable
}

test_patch_downgrade_is_forceable if {
	inp := object.union(base, {"cluster": {"target": "1.33.2", "upgrade": "patch"}, "plan": {"hops": [{"from": "1.33.4", "to": "1.33.2"}]}})
	f := finding(cupcake.deny, "skew.patch-downgrade") with input as inp
	f.forceable
	not "skew.minor-downgrade" in denies(inp)
}

test_patch_upgrade_is_no_downgrade if {
	inp := object.union(base, {"cluster": {"target": "1.33.10", "upgrade": "patch"}})
	not "skew.patch-downgrade" in denies(inp)
}

test_prerelease_needs_opt_in if {
	inp := object.union(base, {"cluster": {"target": "1.35.0-rc.1"}})
	f := finding(cupcake.deny, "skew.prerelease") with input as inp
	contains(f.msg, "allowPrerelease: rc")
	rc := object.union(inp, {"cluster": {"allowPrerelease": "rc"}})
	not "skew.prerelease" in denies(rc)
}

test_alpha_needs_all if {
	inp := object.union(base, {"cluster": {"target": "1.35.0-alpha.1", "allowPrerelease": "rc"}})
	f := finding(cupcake.deny, "skew.prerelease") with input as inp
	contains(f.msg, "allowPrerelease: all")
	all := object.union(inp, {"cluster": {"allowPrerelease": "all"}})
	not "skew.prerelease" in denies(all)
}

test_kubelet_newer_than_apiserver if {
	inp := object.union(base, {"cluster": {"timeline": [timeline(0, "workers", "1.33.4", "1.33.4", "1.33.4", "1.34.2")]}})
	f := finding(cupcake.deny, "skew.kubelet-newer-than-apiserver") with input as inp
	not f.forceable
	contains(f.msg, "after stage 1")
}

test_kubelet_patch_newer_is_fine if {
	inp := object.union(base, {"cluster": {"timeline": [timeline(0, "workers", "1.34.1", "1.34.1", "1.34.1", "1.34.2")]}})
	not "skew.kubelet-newer-than-apiserver" in denies(inp)
}

test_kubelet_three_minors_behind_is_fine if {
	inp := object.union(base, {"cluster": {"timeline": [timeline(0, "control-plane", "1.34.2", "1.34.2", "1.31.0", "1.34.2")]}})
	not "skew.kubelet-too-old" in denies(inp)
}

test_kubelet_four_minors_behind_is_forceable if {
	inp := object.union(base, {"cluster": {"timeline": [timeline(0, "control-plane", "1.34.2", "1.34.2", "1.30.0", "1.34.2")]}})
	f := finding(cupcake.deny, "skew.kubelet-too-old") with input as inp
	f.forceable
	contains(f.msg, "4 minors behind")
}

test_old_kubelets_below_125_allow_two if {
	two := object.union(base, {"cluster": {"timeline": [timeline(0, "control-plane", "1.24.0", "1.24.0", "1.22.0", "1.24.0")]}})
	not "skew.kubelet-too-old" in denies(two)
	three := object.union(base, {"cluster": {"timeline": [timeline(0, "control-plane", "1.25.0", "1.25.0", "1.22.0", "1.25.0")]}})
	"skew.kubelet-too-old" in denies(three)
}

test_ha_apiservers_within_one_minor if {
	one := object.union(base, {"cluster": {"timeline": [timeline(0, "control-plane", "1.33.4", "1.34.2", "1.33.4", "1.33.4")]}})
	not "skew.apiserver-skew" in denies(one)
	two := object.union(base, {"cluster": {"timeline": [timeline(0, "control-plane", "1.32.4", "1.34.2", "1.32.4", "1.32.4")]}})
	"skew.apiserver-skew" in denies(two)
}

test_major_change_is_not_a_minor_downgrade if {
	inp := object.union(base, {"cluster": {"target": "2.0.0"}})
	not "skew.minor-downgrade" in denies(inp)
}

test_a_control_plane_node_mid_hop_is_not_a_kubelet_skew_violation if {
	t := object.union(timeline(0, "backup", "1.33.4", "1.34.2", "1.33.4", "1.34.2"), {"newestKubelets": ["cp-1"]})
	inp := object.union(base, {"cluster": {"apiservers": {"cp-1": "1.34.2", "cp-2": "1.33.4"}, "timeline": [t]}})
	not "skew.kubelet-newer-than-apiserver" in denies(inp)
	worker := object.union(t, {"newestKubelets": ["cp-1", "worker-9"]})
	bad := object.union(inp, {"cluster": {"timeline": [worker]}})
	f := finding(cupcake.deny, "skew.kubelet-newer-than-apiserver") with input as bad
	contains(f.msg, "worker-9")
	not contains(f.msg, "cp-1")
}
