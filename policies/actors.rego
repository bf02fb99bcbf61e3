# Changes written by the cluster itself (control-plane components, nodes,
# controllers in kube-system) and by GitOps controllers (whose changes come
# from Git already) are not recorded. Their deletes are: record.rego never
# lets an ignore rule drop a DELETE (namespace deletion, garbage collection).
package reverser

# Users matched exactly, with what they are. The GitOps controllers are
# listed with the service accounts of their default installations.
known_users := {
	"system:apiserver": "control-plane user",
	"system:cloud-controller-manager": "control-plane user",
	"system:kube-controller-manager": "control-plane user",
	"system:kube-proxy": "control-plane user",
	"system:kube-scheduler": "control-plane user",
	"system:volume-scheduler": "control-plane user",
	"system:serviceaccount:flux-system:helm-controller": "GitOps controller",
	"system:serviceaccount:flux-system:kustomize-controller": "GitOps controller",
	"system:serviceaccount:argocd:argocd-application-controller": "GitOps controller",
	"system:serviceaccount:argocd:argocd-server": "GitOps controller",
}

# Prefixes of users that are nodes or in-cluster controllers.
system_user_prefixes := {
	# kubelets
	"system:node:",
	# controllers of kube-controller-manager and add-ons running in
	# kube-system (HPA, garbage collector, endpoint slices, CoreDNS, ...)
	"system:serviceaccount:kube-system:",
	# node lease heartbeats
	"system:serviceaccount:kube-node-lease:",
}

ignore contains sprintf("written by %s %s", [known_users[user], user]) if {
	user := input.userInfo.username
	known_users[user]
}

ignore contains sprintf("written by system user %s", [user]) if {
	user := input.userInfo.username
	strings.any_prefix_match(user, system_user_prefixes)
}
