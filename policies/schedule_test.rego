package cupcake_test

import data.cupcake

outside := object.union(base, {"schedule": {"inWindow": false, "activeWindow": null, "remainingSeconds": null}})

test_outside_window_defers_until_next_start if {
	f := finding(cupcake.defer, "schedule.outside-window") with input as outside
	f.until == "2026-12-05T01:00:00Z"
	contains(f.msg, "2026-12-05T01:00:00Z")
}

test_outside_window_without_next if {
	inp := json.remove(outside, ["schedule/nextWindow"])
	f := finding(cupcake.defer, "schedule.outside-window") with input as inp
	not f.until
}

test_inside_window_passes if {
	not "schedule.outside-window" in defers(base)
}

test_suspended_defers if {
	inp := object.union(base, {"schedule": {"suspended": true}})
	"schedule.suspended" in defers(inp)
}

exclusion(scope) := {"index": 0, "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z", "scope": scope, "reason": "year-end freeze", "resumeAt": "2027-01-09T01:00:00Z"}

test_exclusion_all_defers_until_resume if {
	inp := object.union(base, {"schedule": {"activeExclusions": [exclusion("all")]}})
	f := finding(cupcake.defer, "schedule.exclusion") with input as inp
	f.until == "2027-01-09T01:00:00Z"
	contains(f.msg, "year-end freeze")
}

test_minor_exclusion_lets_patches_through if {
	minor := object.union(base, {"schedule": {"activeExclusions": [exclusion("minor")]}})
	"schedule.exclusion" in defers(minor)
	patch := object.union(minor, {"cluster": {"upgrade": "patch"}})
	not "schedule.exclusion" in defers(patch)
}

test_patch_exclusion_lets_minors_through if {
	inp := object.union(base, {"schedule": {"activeExclusions": [exclusion("patch")]}})
	not "schedule.exclusion" in defers(inp)
	patch := object.union(inp, {"cluster": {"upgrade": "patch"}})
	"schedule.exclusion" in defers(patch)
}

must_finish(remaining) := object.union(base, {"schedule": {
	"activeWindow": {"index": 0, "start": "2026-11-28T01:00:00Z", "end": "2026-11-28T05:00:00Z", "mustFinish": true},
	"remainingSeconds": remaining,
}})

test_must_finish_defers_when_the_estimate_does_not_fit if {
	f := finding(cupcake.defer, "schedule.must-finish") with input as must_finish(3000)
	f.until == "2026-12-05T01:00:00Z"
}

test_must_finish_passes_when_it_fits if {
	not "schedule.must-finish" in defers(must_finish(3360))
}

test_window_without_must_finish_ignores_estimate if {
	inp := object.union(base, {"schedule": {"remainingSeconds": 60}})
	not "schedule.must-finish" in defers(inp)
}

test_target_matching_the_version_pattern_passes if {
	inp := object.union(base, {"schedule": {"targetVersionPattern": "1.34.x"}})
	not "schedule.target-version-pattern" in denies(inp)
	exact := object.union(base, {"schedule": {"targetVersionPattern": "v1.34.2"}})
	not "schedule.target-version-pattern" in denies(exact)
}

test_target_outside_the_version_pattern_denies_forceably if {
	inp := object.union(base, {"schedule": {"targetVersionPattern": "1.33.x"}})
	f := finding(cupcake.deny, "schedule.target-version-pattern") with input as inp
	f.forceable
	contains(f.msg, "1.33.x")
}

test_no_version_pattern_no_finding if {
	not "schedule.target-version-pattern" in denies(base)
}

test_estimate_overrunning_a_window_warns if {
	inp := object.union(base, {"plan": {"estimate": {"seconds": 99999}}})
	f := finding(cupcake.warn, "schedule.estimate-overruns-window") with input as inp
	contains(f.msg, "99999s")
	not "schedule.estimate-overruns-window" in warns(base)
}
