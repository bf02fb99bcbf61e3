package reverser_test

import data.reverser

by(user) := object.union(user_update, {"userInfo": {"username": user}})

test_control_plane_users_are_ignored if {
	every user in {
		"system:kube-controller-manager",
		"system:kube-scheduler",
		"system:apiserver",
		"system:cloud-controller-manager",
	} {
		not reverser.record with input as by(user)
	}
}

test_nodes_and_kube_system_service_accounts_are_ignored if {
	every user in {
		"system:node:worker-1",
		"system:serviceaccount:kube-system:deployment-controller",
		"system:serviceaccount:kube-system:generic-garbage-collector",
		"system:serviceaccount:kube-node-lease:default",
	} {
		not reverser.record with input as by(user)
		reverser.reasons == {sprintf("written by system user %s", [user])} with input as by(user)
	}
}

test_gitops_controllers_are_ignored if {
	every user in {
		"system:serviceaccount:flux-system:kustomize-controller",
		"system:serviceaccount:argocd:argocd-application-controller",
	} {
		not reverser.record with input as by(user)
	}
}

test_people_and_other_service_accounts_are_recorded if {
	every user in {
		"alice@example.com",
		"system:admin",
		"kubernetes-admin",
		"system:serviceaccount:shop:deployer",
		# a look-alike that is not in kube-system
		"system:serviceaccount:kube-systems:deployer",
		"system:nodes",
		"unknown",
	} {
		reverser.record with input as by(user)
	}
}

test_deletes_by_system_users_are_recorded if {
	every user in {
		"system:serviceaccount:kube-system:namespace-controller",
		"system:serviceaccount:kube-system:generic-garbage-collector",
		"system:serviceaccount:kube-system:ttl-after-finished-controller",
		"system:node:worker-1",
		"system:kube-controller-manager",
		"system:serviceaccount:flux-system:kustomize-controller",
	} {
		req := object.union(by(user), {"operation": "DELETE", "object": null})
		reverser.record with input as req
	}
}

test_other_writes_by_system_users_stay_ignored if {
	every op in {"CREATE", "UPDATE"} {
		req := object.union(by("system:serviceaccount:kube-system:namespace-controller"), {"operation": op})
		not reverser.record with input as req
	}
}
