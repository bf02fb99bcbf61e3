package rules

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
)

// Kind tells a namespaced WatchRule from a ClusterWatchRule.
type Kind string

const (
	// KindWatchRule is a namespaced WatchRule.
	KindWatchRule Kind = "WatchRule"
	// KindClusterWatchRule is a ClusterWatchRule.
	KindClusterWatchRule Kind = "ClusterWatchRule"
)

// Key identifies a rule in the index.
type Key struct {
	// Kind of the rule.
	Kind Kind
	// Namespace of a WatchRule; empty for a ClusterWatchRule.
	Namespace string
	// Name of the rule.
	Name string
}

// String renders the key as Kind/namespace/name.
func (k Key) String() string {
	if k.Namespace == "" {
		return string(k.Kind) + "/" + k.Name
	}
	return string(k.Kind) + "/" + k.Namespace + "/" + k.Name
}

// Rule is a resolved, immutable rule as the hot path needs it. A Rule must
// not be changed after it is handed to the Index.
type Rule struct {
	// Key identifies the rule.
	Key Key
	// Generation of the rule object this Rule was built from.
	Generation int64
	// Target is the GitTarget the rule writes to.
	Target types.NamespacedName
	// Resources are the resolved resources the rule selects.
	Resources []Resource
	// Operations the rule records.
	Operations map[v1alpha1.Operation]bool
	// Labels selects objects by their labels; nil selects every object.
	Labels labels.Selector
	// Namespace restricts a WatchRule to its own namespace; empty for a
	// ClusterWatchRule.
	Namespace string
	// NamespaceLabels selects the namespaces of a ClusterWatchRule; nil
	// selects every namespace.
	NamespaceLabels labels.Selector
	// Spec is the rule's spec as written, for the later stages (policy,
	// sanitizers, layout, Secret handling).
	Spec v1alpha1.RuleSpec
	// Policy is the compiled Rego policy (the defaults plus the rule's
	// own modules); nil records every selected change.
	Policy *policy.Policy
	// Sanitizers are the rule's WASM sanitizers, applied in order after
	// the built-in sanitizer.
	Sanitizers []ModuleUse
	// Layout is the rule's WASM layout module; nil uses the default
	// layout.
	Layout *ModuleUse
	// Active is when the rule first entered the index, kept across updates
	// of the same rule; Upsert sets it. Changes the watch saw before it
	// are not the rule's: the target's reconcile records the state it found.
	Active time.Time
}

// ModuleUse is a loaded WASM module with the settings this rule gives it.
type ModuleUse struct {
	// Name identifies the module in conditions and metrics.
	Name string
	// Module is the loaded module, shared by every rule that uses the
	// same bytes.
	Module *plugin.Module
	// Settings are handed to the module with every call (JSON).
	Settings []byte
}

// Resource is one resolved group/version/resource and whether it is
// namespaced.
type Resource struct {
	// GVR is the resolved group, version and plural resource.
	GVR schema.GroupVersionResource
	// Namespaced is true for namespaced resources.
	Namespaced bool
}

// Request is what a caller knows about a change when it asks the Index.
type Request struct {
	// Resource of the changed object. The version is ignored: rules match
	// on group and resource, as admission's Equivalent match policy does.
	Resource schema.GroupResource
	// Namespace of the object; empty for cluster-scoped objects.
	Namespace string
	// Labels of the object (for DELETE, those of the old object).
	Labels labels.Set
	// Operation of the change.
	Operation v1alpha1.Operation
}

// NamespaceLabeler returns the labels of a namespace. ClusterWatchRules
// with a namespace selector need it; ok is false when the namespace is
// unknown.
type NamespaceLabeler func(namespace string) (set labels.Set, ok bool)

// snapshot is an immutable view of the index.
type snapshot struct {
	rules      map[Key]*Rule
	byResource map[schema.GroupResource][]*Rule
	revision   uint64
}

// Index answers which rules select a change. Match is lock-free and safe for
// any number of concurrent readers; Upsert and Delete serialise among
// themselves and publish a new snapshot.
type Index struct {
	writeMu sync.Mutex
	current atomic.Pointer[snapshot]

	subMu       sync.Mutex
	subscribers []chan struct{}
}

// NewIndex returns an empty Index.
func NewIndex() *Index {
	ix := &Index{}
	ix.current.Store(&snapshot{rules: map[Key]*Rule{}, byResource: map[schema.GroupResource][]*Rule{}})
	return ix
}

// Upsert adds or replaces a rule.
func (ix *Index) Upsert(r *Rule) {
	ix.write(func(rules map[Key]*Rule) bool {
		if old, ok := rules[r.Key]; ok {
			r.Active = old.Active
		} else {
			r.Active = time.Now()
		}
		rules[r.Key] = r
		return true
	})
}

// Delete removes a rule; removing an absent rule is a no-op.
func (ix *Index) Delete(k Key) {
	ix.write(func(rules map[Key]*Rule) bool {
		if _, ok := rules[k]; !ok {
			return false
		}
		delete(rules, k)
		return true
	})
}

func (ix *Index) write(mutate func(map[Key]*Rule) bool) {
	ix.writeMu.Lock()
	defer ix.writeMu.Unlock()
	old := ix.current.Load()
	rules := make(map[Key]*Rule, len(old.rules)+1)
	for k, v := range old.rules {
		rules[k] = v
	}
	if !mutate(rules) {
		return
	}
	byResource := map[schema.GroupResource][]*Rule{}
	for _, r := range rules {
		seen := map[schema.GroupResource]bool{}
		for _, res := range r.Resources {
			gr := res.GVR.GroupResource()
			if seen[gr] {
				continue
			}
			seen[gr] = true
			byResource[gr] = append(byResource[gr], r)
		}
	}
	for _, list := range byResource {
		sort.Slice(list, func(i, j int) bool { return list[i].Key.String() < list[j].Key.String() })
	}
	ix.current.Store(&snapshot{rules: rules, byResource: byResource, revision: old.revision + 1})
	ix.notify()
}

// ForResource returns the rules that have the resource, without copying
// or sorting: a lock-free read for hot paths. Callers must not modify the
// slice.
func (ix *Index) ForResource(gr schema.GroupResource) []*Rule {
	return ix.current.Load().byResource[gr]
}

// Match returns the rules that select the request, ordered by key. Its cost
// follows the number of rules for the request's resource, not the number of
// rules in the index.
func (ix *Index) Match(req Request, nsLabels NamespaceLabeler) []*Rule {
	snap := ix.current.Load()
	candidates := snap.byResource[req.Resource]
	if len(candidates) == 0 {
		return nil
	}
	var out []*Rule
	for _, r := range candidates {
		if r.Selects(req, nsLabels) {
			out = append(out, r)
		}
	}
	return out
}

// Left returns the rules, ordered by key, that selected an object with the
// labels old and do not select it with the labels cur (an update moved it
// out of their label selection), among those that record deletions: their
// file of the object must go. Namespace selectors do not change between
// the two states.
func (ix *Index) Left(resource schema.GroupResource, namespace string, old, cur labels.Set, nsLabels NamespaceLabeler) []*Rule {
	snap := ix.current.Load()
	var out []*Rule
	for _, r := range snap.byResource[resource] {
		req := Request{Resource: resource, Namespace: namespace, Labels: old, Operation: v1alpha1.OperationDelete}
		if !r.Selects(req, nsLabels) {
			continue
		}
		req.Labels = cur
		if !r.Selects(req, nsLabels) {
			out = append(out, r)
		}
	}
	return out
}

// Selects reports whether the rule selects the request.
func (r *Rule) Selects(req Request, nsLabels NamespaceLabeler) bool {
	if len(r.Operations) > 0 && !r.Operations[req.Operation] {
		return false
	}
	if r.Namespace != "" && req.Namespace != r.Namespace {
		return false
	}
	if r.Labels != nil && !r.Labels.Empty() && !r.Labels.Matches(req.Labels) {
		return false
	}
	if r.NamespaceLabels != nil && !r.NamespaceLabels.Empty() && req.Namespace != "" {
		if nsLabels == nil {
			return false
		}
		set, ok := nsLabels(req.Namespace)
		if !ok || !r.NamespaceLabels.Matches(set) {
			return false
		}
	}
	return true
}

// Get returns the rule with the key.
func (ix *Index) Get(k Key) (*Rule, bool) {
	r, ok := ix.current.Load().rules[k]
	return r, ok
}

// Rules returns every rule, ordered by key.
func (ix *Index) Rules() []*Rule {
	snap := ix.current.Load()
	out := make([]*Rule, 0, len(snap.rules))
	for _, r := range snap.rules {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

// Resources returns every resource that at least one rule selects, with the
// union of operations over the rules that select it.
func (ix *Index) Resources() map[schema.GroupVersionResource]ResourceUse {
	snap := ix.current.Load()
	out := map[schema.GroupVersionResource]ResourceUse{}
	for _, r := range snap.rules {
		for _, res := range r.Resources {
			use := out[res.GVR]
			use.Namespaced = res.Namespaced
			if r.Namespace == "" || !res.Namespaced {
				use.AllNamespaces = true
			} else {
				if use.Namespaces == nil {
					use.Namespaces = map[string]bool{}
				}
				use.Namespaces[r.Namespace] = true
			}
			if use.Operations == nil {
				use.Operations = map[v1alpha1.Operation]bool{}
			}
			if len(r.Operations) == 0 {
				for _, op := range []v1alpha1.Operation{v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete} {
					use.Operations[op] = true
				}
			}
			for op := range r.Operations {
				use.Operations[op] = true
			}
			out[res.GVR] = use
		}
	}
	return out
}

// ResourceUse says how the rules use one resource.
type ResourceUse struct {
	// Namespaced is true for namespaced resources.
	Namespaced bool
	// AllNamespaces is true when a ClusterWatchRule selects the resource
	// (or it is cluster-scoped): it is watched cluster-wide.
	AllNamespaces bool
	// Namespaces are the namespaces of the WatchRules that select the
	// resource; they matter only when AllNamespaces is false.
	Namespaces map[string]bool
	// Operations is the union of the operations the rules record.
	Operations map[v1alpha1.Operation]bool
}

// Revision increases with every change of the index.
func (ix *Index) Revision() uint64 { return ix.current.Load().revision }

// Subscribe returns a channel that receives a value (coalesced) after every
// change of the index, for stages that follow the rules: the webhook
// configuration and the informers.
func (ix *Index) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	ix.subMu.Lock()
	ix.subscribers = append(ix.subscribers, ch)
	ix.subMu.Unlock()
	return ch
}

func (ix *Index) notify() {
	ix.subMu.Lock()
	defer ix.subMu.Unlock()
	for _, ch := range ix.subscribers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Modules returns the WASM modules the rule holds.
func (r *Rule) Modules() []*plugin.Module {
	var out []*plugin.Module
	for _, s := range r.Sanitizers {
		out = append(out, s.Module)
	}
	if r.Layout != nil {
		out = append(out, r.Layout.Module)
	}
	return out
}

// ReleaseModules releases the rule's modules; for a rule that never made it
// into the index.
func (r *Rule) ReleaseModules(ctx context.Context) {
	for _, m := range r.Modules() {
		m.Release(ctx)
	}
	r.Sanitizers, r.Layout = nil, nil
}
