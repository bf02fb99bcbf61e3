# The decision the engine reads for every change a rule selects:
#
#   data.reverser.record   boolean: write the change to Git?
#   data.reverser.reasons  set of strings: why (shown in conditions, logs and
#                          commit trailers)
#   data.reverser.labels   object of strings: extra labels for the commit
#                          message (the defaults set none)
#
# A rule's own policy modules are compiled together with these defaults in
# package reverser, so a rule adds to them: `ignore contains "why" if {...}`
# drops more changes, `keep contains "why" if {...}` records a change that an
# ignore rule (a default one included) would drop. See docs/policies.md.
package reverser

# A change is recorded unless something says otherwise.
default record := true

# A DELETE is always recorded: the file of an object that is gone must go,
# whoever removed it (the namespace controller, the garbage collector, a
# TTL controller), so ignore rules drop only creations and updates. The
# operator does not even ask the policy about a DELETE; this line keeps
# `opa test` and `opa eval` of a policy in step with what the operator does.
record := false if {
	input.operation != "DELETE"
	count(ignore) > 0
	not kept
}

# kept is true when a keep rule of the rule's own policy fires. The defaults
# define no keep rule, so the reference goes through data and is simply
# undefined when no module defines one.
kept if count(data.reverser.keep) > 0

# reasons are every ignore and keep reason that applies: for a kept change
# both what would have dropped it and what kept it.
reasons contains reason if some reason in ignore

reasons contains reason if some reason in data.reverser.keep
