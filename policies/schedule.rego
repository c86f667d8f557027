# Maintenance windows, exclusions, suspension and must-finish windows. The
# schedule is evaluated in Rust (DST-correct, POSIX crontab) into
# input.schedule; these rules turn it into defers.
package cupcake

defer contains {"id": "schedule.suspended", "msg": "the UpdateSchedule is suspended (spec.suspended: true); set it to false in schedule.yaml to let upgrades start"} if {
	upgrading
	input.schedule.suspended
}

defer contains f if {
	upgrading
	not input.schedule.inWindow
	next_window_start != ""
	msg := sprintf("outside every maintenance window; the upgrade waits for the next one, which opens at %s (windows[%d] of schedule.yaml)", [next_window_start, input.schedule.nextWindow.index])
	f := deferral("schedule.outside-window", msg, next_window_start)
}

defer contains {"id": "schedule.outside-window", "msg": "outside every maintenance window and none opens within a year; check the windows in schedule.yaml"} if {
	upgrading
	not input.schedule.inWindow
	next_window_start == ""
}

# An exclusion blocks everything, only minor upgrades, or only patch upgrades.
blocks(x) if x.scope == "all"

blocks(x) if {
	x.scope == input.cluster.upgrade
	x.scope != "all"
}

defer contains f if {
	upgrading
	some x in input.schedule.activeExclusions
	blocks(x)
	reason := object.get(x, "reason", "no reason given")
	msg := sprintf("exclusion %s to %s (%s, scope %s) is active; the upgrade waits until it ends and a window is open", [x.start, x.end, reason, x.scope])
	f := deferral("schedule.exclusion", msg, object.get(x, "resumeAt", ""))
}

defer contains f if {
	upgrading
	w := input.schedule.activeWindow
	w.mustFinish
	input.plan.estimate.seconds > input.schedule.remainingSeconds
	msg := sprintf("the plan's estimate (%ds) does not fit the %ds left in the current must-finish window (closes %s); it waits for the next window, or raise concurrency/maxUnavailable to shorten it", [input.plan.estimate.seconds, input.schedule.remainingSeconds, w.end])
	f := deferral("schedule.must-finish", msg, next_window_start)
}

# The original CUPCAKE's updatePolicy.targetVersionPattern (1.34.x): the target must match it.
deny contains {"id": "schedule.target-version-pattern", "msg": msg, "forceable": true} if {
	upgrading
	p := trim_prefix(input.schedule.targetVersionPattern, "v")
	not matches_pattern(input.cluster.target, p)
	msg := sprintf("target %s does not match updatePolicy.targetVersionPattern %s of schedule.yaml; change the target or the pattern", [input.cluster.target, p])
}

matches_pattern(v, p) if {
	vs := split(split(v, "-")[0], ".")
	ps := split(p, ".")
	count(vs) == count(ps)
	every i, x in ps {
		x in {"x", vs[i]}
	}
}

# A window without mustFinish still says when the plan will run past its end.
warn contains {"id": "schedule.estimate-overruns-window", "msg": msg} if {
	upgrading
	w := input.schedule.activeWindow
	not w.mustFinish
	input.plan.estimate.seconds > input.schedule.remainingSeconds
	msg := sprintf("the plan's estimate (%ds) is longer than the %ds left in the current window (closes %s): nodes will still be upgraded after it closes; set mustFinish: true on the window to wait for one long enough", [input.plan.estimate.seconds, input.schedule.remainingSeconds, w.end])
}
