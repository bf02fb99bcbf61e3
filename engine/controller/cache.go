package controller

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// CacheOptions are the options of the manager's cache, shared by the
// binary, the dev command and the test suites' manager:
//
//   - its informers drop managedFields on ingest: nothing the operator
//     reads from the cache uses them (an Update or merge patch of a cached
//     object without them keeps the server's);
//   - it holds only the ConfigMaps labelled as policies
//     (v1alpha1.PolicyLabel=true). The rule controller watches them to
//     requeue the rules that reference an edited policy; every ConfigMap
//     read (policies, WASM modules) goes to the API server, not the cache.
//     Without the selector the manager decoded, mapped and cached every
//     ConfigMap of the cluster (about 8 MB and a share of the CPU per
//     change with 20,000 ConfigMaps). A ConfigMap that loses the label
//     leaves the selection, which the watch reports like a delete, so the
//     rules that name it are requeued and say it lacks the label; one that
//     gains it enters the selection. An unlabelled ConfigMap that a rule
//     names cannot be its policy; the rule retries on its own.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{v1alpha1.PolicyLabel: "true"})},
		},
	}
}
