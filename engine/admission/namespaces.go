package admission

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// namespaceLookupTimeout bounds one lookup; with a cache-backed reader it
// only matters for the first call, which waits for the cache to sync.
const namespaceLookupTimeout = 5 * time.Second

// NamespaceLabels returns a rules.NamespaceLabeler that reads a namespace's
// metadata through reader. Give it a controller-runtime cache (the
// manager's client reader): the lookup is then a local read of a
// metadata-only informer, cheap enough for the workers and the watch.
func NamespaceLabels(reader client.Reader) rules.NamespaceLabeler {
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	return func(namespace string) (labels.Set, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), namespaceLookupTimeout)
		defer cancel()
		var ns metav1.PartialObjectMetadata
		ns.SetGroupVersionKind(gvk)
		if err := reader.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
			return nil, false
		}
		return labels.Set(ns.GetLabels()), true
	}
}
