# Helpers shared by the default pack. Every file of the pack and of a fleet
# repo's policies/ adds to package cupcake; only deny, warn and defer are read.
package cupcake

# The default rules stay quiet when there is nothing to do.
upgrading if not input.cluster.upToDate

# Minor number of a normalised version string ("1.34.2" -> 34).
minor(v) := to_number(split(v, ".")[1])

major(v) := to_number(split(v, ".")[0])

# A pre-release ("1.35.0-rc.1").
is_prerelease(v) := contains(v, "-")

# Names joined for a message: the first five, then "and N more".
list_names(names) := concat(", ", names) if count(names) <= 5

list_names(names) := sprintf("%s and %d more", [concat(", ", array.slice(names, 0, 5)), count(names) - 5]) if count(names) > 5

# A defer finding, with "until" only when it is known.
deferral(id, msg, until) := {"id": id, "msg": msg, "until": until} if until != ""

deferral(id, msg, until) := {"id": id, "msg": msg} if until == ""

# Start of the next window, "" when none is known.
next_window_start := object.get(input.schedule, ["nextWindow", "start"], "")
