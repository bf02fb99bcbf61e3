package reverser_test

import data.reverser

configmap(op, name, annotations) := {
	"operation": op,
	"userInfo": {"username": "alice@example.com"},
	"resource": {"group": "", "version": "v1", "resource": "configmaps"},
	"kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
	"namespace": "shop",
	"name": name,
	"object": {"metadata": {"name": name, "annotations": annotations}, "data": {"k": "v"}},
	"oldObject": null,
}

test_kube_root_ca_is_ignored if {
	not reverser.record with input as configmap("CREATE", "kube-root-ca.crt", {})
}

test_other_configmaps_are_recorded if {
	reverser.record with input as configmap("CREATE", "settings", {})
}

test_leader_configmap_is_ignored if {
	not reverser.record with input as configmap("UPDATE", "my-operator-lock", {"control-plane.alpha.kubernetes.io/leader": "{\"holderIdentity\":\"pod-1\"}"})
}

# A DELETE is always recorded (record.rego): the reason is still given.
test_leader_configmap_delete_is_recorded_with_reason if {
	req := object.union(configmap("DELETE", "my-operator-lock", {}), {
		"object": null,
		"oldObject": {"metadata": {"name": "my-operator-lock", "annotations": {"control-plane.alpha.kubernetes.io/leader": "{}"}}},
	})
	reverser.record with input as req
	reverser.reasons == {"leader-election record (control-plane.alpha.kubernetes.io/leader)"} with input as req
}

test_leader_annotation_on_other_group_is_recorded if {
	req := object.union(configmap("UPDATE", "lock", {"control-plane.alpha.kubernetes.io/leader": "{}"}), {"resource": {"group": "example.com", "version": "v1", "resource": "configmaps"}})
	reverser.record with input as req
}

test_leases_are_ignored if {
	req := {
		"operation": "UPDATE",
		"userInfo": {"username": "system:serviceaccount:shop:my-operator"},
		"resource": {"group": "coordination.k8s.io", "version": "v1", "resource": "leases"},
		"namespace": "shop",
		"name": "my-operator-lock",
	}
	not reverser.record with input as req
	reverser.reasons == {"Leases are leader-election and heartbeat records"} with input as req
}
