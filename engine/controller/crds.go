package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// announceWindow is how long after a CRD event a rule that waits for its
// resource is resolved every second: the API server serves a CRD's
// resource shortly after it sets Established, not at the same instant.
const announceWindow = 30 * time.Second

// crdMetadata is what the rule controllers watch of CustomResourceDefinitions:
// metadata only (a CRD's schema can be large), which changes with every
// write, status included, so a CRD becoming Established is an event. The
// name of a CRD is <plural>.<group>: all the rules need.
func crdMetadata() *metav1.PartialObjectMetadata {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	return crd
}

// crdResource is the group and resource a CRD of that name serves.
func crdResource(name string) (schema.GroupResource, bool) {
	plural, group, ok := strings.Cut(name, ".")
	if !ok || plural == "" || group == "" {
		return schema.GroupResource{}, false
	}
	return schema.GroupResource{Group: group, Resource: plural}, true
}

// rulesForCRD requeues the rules of this kind that wait for the CRD's
// resource or already record it (the CRD may have been deleted or changed
// its versions), and resets discovery for them.
func (r *RuleReconciler) rulesForCRD(ctx context.Context, o client.Object) []reconcile.Request {
	gr, ok := crdResource(o.GetName())
	if !ok {
		return nil
	}
	keys := r.waiting.announce(gr, r.kind(), time.Now())
	for _, rule := range r.Index.Rules() {
		if rule.Key.Kind != r.kind() {
			continue
		}
		for _, res := range rule.Resources {
			if res.GVR.GroupResource() == gr {
				keys = append(keys, rule.Key)
				break
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	r.resetMapper()
	out := make([]reconcile.Request, 0, len(keys))
	seen := map[rules.Key]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
	}
	log.FromContext(ctx).V(1).Info("a CustomResourceDefinition changed; resolving rules again", "crd", o.GetName(), "rules", len(out))
	return out
}

// waitingRules tracks which rules wait for which resources, and when a CRD
// last announced one of them.
type waitingRules struct {
	mu          sync.Mutex
	missing     map[rules.Key][]schema.GroupResource
	announcedAt map[schema.GroupResource]time.Time
}

// set records the resources the rule waits for; none forgets the rule.
func (w *waitingRules) set(k rules.Key, missing []rules.Missing) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(missing) == 0 {
		delete(w.missing, k)
		return
	}
	if w.missing == nil {
		w.missing = map[rules.Key][]schema.GroupResource{}
	}
	grs := make([]schema.GroupResource, 0, len(missing))
	for _, m := range missing {
		grs = append(grs, m.Resource)
	}
	w.missing[k] = grs
}

// announce notes that a CRD for gr changed and returns the rules of kind
// that wait for it.
func (w *waitingRules) announce(gr schema.GroupResource, kind rules.Kind, now time.Time) []rules.Key {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []rules.Key
	for k, grs := range w.missing {
		if k.Kind != kind {
			continue
		}
		for _, g := range grs {
			if g == gr {
				out = append(out, k)
				break
			}
		}
	}
	if len(out) > 0 {
		if w.announcedAt == nil {
			w.announcedAt = map[schema.GroupResource]time.Time{}
		}
		w.announcedAt[gr] = now
	}
	for g, at := range w.announcedAt {
		if now.Sub(at) > announceWindow {
			delete(w.announcedAt, g)
		}
	}
	return out
}

// announced reports whether a CRD announced one of the rule's missing
// resources within the window.
func (w *waitingRules) announced(k rules.Key, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, gr := range w.missing[k] {
		if at, ok := w.announcedAt[gr]; ok && now.Sub(at) <= announceWindow {
			return true
		}
	}
	return false
}
