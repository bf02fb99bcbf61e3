package reverser_test

import data.reverser

deployment(rv, generation, replicas, ready) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {
		"name": "web",
		"namespace": "shop",
		"resourceVersion": rv,
		"generation": generation,
		"managedFields": [{"manager": "kubectl", "operation": "Update", "time": rv}],
	},
	"spec": {"replicas": replicas},
	"status": {"readyReplicas": ready},
}

# update is user_update with these states (object.union alone would merge
# them with user_update's).
update(old, new) := object.union(object.remove(user_update, {"object", "oldObject"}), {"object": new, "oldObject": old})

test_status_only_update_is_ignored if {
	req := update(deployment("1", 1, 3, 1), deployment("2", 1, 3, 3))
	not reverser.record with input as req
	reverser.reasons == {"status-only update"} with input as req
}

test_status_subresource_is_ignored if {
	req := object.union(update(deployment("1", 1, 3, 1), deployment("2", 1, 3, 3)), {"subResource": "status"})
	not reverser.record with input as req
}

test_spec_update_is_recorded if {
	reverser.record with input as update(deployment("1", 1, 3, 3), deployment("2", 2, 5, 3))
}

test_label_update_is_recorded if {
	old := deployment("1", 1, 3, 3)
	new := json.patch(deployment("2", 1, 3, 3), [{"op": "add", "path": "/metadata/labels", "value": {"tier": "web"}}])
	reverser.record with input as update(old, new)
}

test_scale_subresource_is_recorded if {
	req := object.union(update(deployment("1", 1, 3, 3), deployment("2", 2, 5, 3)), {"subResource": "scale"})
	reverser.record with input as req
}

test_create_and_delete_are_not_status_only if {
	d := deployment("1", 1, 3, 3)
	reverser.record with input as object.union(user_update, {"operation": "CREATE", "object": d, "oldObject": null})
	reverser.record with input as object.union(user_update, {"operation": "DELETE", "object": null, "oldObject": d})
}

test_update_with_missing_metadata_is_recorded if {
	new := deployment("2", 1, 3, 3)
	old := object.remove(deployment("1", 1, 3, 3), {"metadata"})
	reverser.record with input as update(old, new)
	reverser.record with input as update(new, old)
}

test_update_with_missing_state_is_recorded if {
	reverser.record with input as update(null, deployment("2", 1, 3, 3))
	reverser.record with input as object.remove(user_update, {"oldObject"})
}
