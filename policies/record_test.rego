package reverser_test

import data.reverser

user_update := {
	"operation": "UPDATE",
	"userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
	"resource": {"group": "apps", "version": "v1", "resource": "deployments"},
	"kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
	"namespace": "shop",
	"name": "web",
	"subResource": "",
	"dryRun": false,
	"object": {"metadata": {"name": "web", "resourceVersion": "2"}, "spec": {"replicas": 3}},
	"oldObject": {"metadata": {"name": "web", "resourceVersion": "1"}, "spec": {"replicas": 2}},
}

test_user_change_is_recorded if {
	reverser.record with input as user_update
	count(reverser.reasons) == 0 with input as user_update
}

test_empty_input_is_recorded if {
	reverser.record with input as {}
}

test_ignored_change_is_not_recorded_and_says_why if {
	req := object.union(user_update, {"userInfo": {"username": "system:kube-scheduler"}})
	not reverser.record with input as req
	reverser.reasons == {"written by control-plane user system:kube-scheduler"} with input as req
}

test_keep_overrides_ignore if {
	req := object.union(user_update, {"userInfo": {"username": "system:serviceaccount:kube-system:horizontal-pod-autoscaler"}})
	keep := {"autoscaling is part of the record"}
	reverser.record with input as req with data.reverser.keep as keep
	reverser.reasons == keep | {"written by system user system:serviceaccount:kube-system:horizontal-pod-autoscaler"} with input as req with data.reverser.keep as keep
}

test_keep_without_ignore_records_with_reason if {
	keep := {"always"}
	reverser.record with input as user_update with data.reverser.keep as keep
	reverser.reasons == keep with input as user_update with data.reverser.keep as keep
}

test_delete_is_recorded_whatever_ignores if {
	req := object.union(user_update, {"operation": "DELETE", "object": null})
	ignore := {"a rule's own ignore"}
	reverser.record with input as req with data.reverser.ignore as ignore
	reverser.reasons == ignore with input as req with data.reverser.ignore as ignore
}
