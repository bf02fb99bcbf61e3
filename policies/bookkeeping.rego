# Objects the cluster keeps for its own bookkeeping: the CA bundle published
# into every namespace, leader-election records and heartbeats.
#
# Conditions compare input fields with constants first, so OPA's rule index
# skips these rules for every other resource without evaluating them.
package reverser

ignore contains "kube-root-ca.crt is published by the control plane" if {
	input.resource.group == ""
	input.resource.resource == "configmaps"
	input.name == "kube-root-ca.crt"
}

ignore contains "Leases are leader-election and heartbeat records" if {
	input.resource.group == "coordination.k8s.io"
	input.resource.resource == "leases"
}

ignore contains leader_reason if {
	input.resource.group == ""
	input.resource.resource == "configmaps"
	leader_record
}

# Endpoints were the other object type of old leader-election locks.
ignore contains leader_reason if {
	input.resource.group == ""
	input.resource.resource == "endpoints"
	leader_record
}

leader_annotation := "control-plane.alpha.kubernetes.io/leader"

leader_reason := sprintf("leader-election record (%s)", [leader_annotation])

# leader_record is true when the new or the old state carries the leader
# annotation (DELETE has only the old one).
leader_record if input.object.metadata.annotations[leader_annotation]

leader_record if input.oldObject.metadata.annotations[leader_annotation]
