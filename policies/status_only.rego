# Updates that change only an object's status (or bookkeeping fields the API
# server maintains) are not recorded: Git holds the desired state.
package reverser

ignore contains "status-only update" if {
	input.operation == "UPDATE"
	input.subResource == "status"
}

ignore contains "status-only update" if {
	input.operation == "UPDATE"

	# Guards first, so that the rule never rests on how an undefined
	# argument behaves inside the negations below.
	is_object(input.object.metadata)
	is_object(input.oldObject.metadata)

	# Shallow copies without the changing parts (cheaper than json.remove,
	# which copies the whole object), compared with `not x != y`: `x == y`
	# would be compiled into unification, which allocates for every key of
	# a large object.
	not object.remove(input.object, {"status", "metadata"}) != object.remove(input.oldObject, {"status", "metadata"})
	not object.remove(input.object.metadata, server_metadata) != object.remove(input.oldObject.metadata, server_metadata)
}

# Metadata fields the API server changes on every write.
server_metadata := {"resourceVersion", "managedFields", "generation"}
