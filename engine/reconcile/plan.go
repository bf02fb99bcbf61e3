package reconcile

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// Listing is the objects of one resource and their kind.
type Listing struct {
	// Kind of the resource's objects, e.g. "ConfigMap" (the list's kind
	// without "List"). When it is empty the first item's kind is used; a
	// resource with neither claims no files.
	Kind string
	// Items are the objects.
	Items []unstructured.Unstructured
}

// Lister lists the objects of a resource, in one namespace or (with an
// empty namespace) in all.
type Lister interface {
	List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) (Listing, error)
}

// ErrNotRecorded is returned (possibly wrapped) by a RenderFunc for an
// object that its rule selects but does not write: the rule's policy ignores
// it, or Secrets are skipped. Such an object has no file.
var ErrNotRecorded = errors.New("not recorded")

// RenderFunc renders what rule r writes for obj, an object of resource gvr:
// the file's repository path and content. ErrNotRecorded means no file; any
// other error keeps the object's files as they are (fail closed: a failing
// sanitizer never wipes a file).
type RenderFunc func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (path string, content []byte, err error)

// Input is what one plan needs.
type Input struct {
	// Rules are the target's rules, in the order their renders win when
	// two write one path (the later wins).
	Rules []*rules.Rule
	// Lister lists the objects the rules select.
	Lister Lister
	// Render renders one object through the rule's stages.
	Render RenderFunc
	// Files are the branch's files under the target's base path
	// (gitstore.Writer.ListFiles).
	Files []gitstore.FileInfo
	// Read returns a file's content at the branch head. It is called only
	// for YAML files at paths that no selected object renders to.
	Read func(path string) ([]byte, bool, error)
	// NamespaceLabels resolves namespace labels for namespace selectors.
	NamespaceLabels rules.NamespaceLabeler
	// Hold reports an object whose files stay as they are in this plan
	// (its change may still be on its way); nil holds none.
	Hold func(obj *unstructured.Unstructured) bool
	// Cache keeps file identities by blob hash from one plan to the next;
	// nil opens every file it must judge.
	Cache *IdentityCache
}

// Ref names one object of one resource.
type Ref struct {
	// GVR is the object's resource.
	GVR schema.GroupVersionResource
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	// Name of the object.
	Name string
}

// Held is an object whose files the plan left as they are.
type Held struct {
	// Rule that selects the object.
	Rule rules.Key
	// Object held.
	Object Ref
	// Young is true when Hold held it (a recheck may write it later);
	// false when it is being deleted or its render failed.
	Young bool
}

// Removal is a managed file that no selected object renders to.
type Removal struct {
	// Path of the file.
	Path string
	// Hash is the file's blob at planning time.
	Hash plumbing.Hash
	// Object is the object the file names.
	Object Ref
	// Orphan is true when no listed object that a rule selects has the
	// file's identity (the object was deleted or left the selection: a
	// live change may be removing it right now); false when the object
	// lives at another path now (a layout moved it) or is not recorded.
	Orphan bool
}

// Placement is where one rule's render put one object.
type Placement struct {
	// Rule that rendered the object.
	Rule rules.Key
	// Object rendered.
	Object Ref
	// Path of its file.
	Path string
}

// Plan is the difference between the branch and what the rules select.
type Plan struct {
	// Writes are the files to add or update, in path order.
	Writes []gitstore.FileChange
	// Added and Updated count Writes by whether the path existed.
	Added, Updated int
	// Removals are the managed files to remove, in path order.
	Removals []Removal
	// Unchanged counts expected files whose blob already matches.
	Unchanged int
	// Held are the objects whose files were left as they are.
	Held []Held
	// Placed is where each selected object's file is expected.
	Placed []Placement
	// Listed counts the objects listed, Read the files opened.
	Listed, Read int
}

// gk is a group and kind.
type gk struct{ group, kind string }

// scope is where one rule of the target selects one kind.
type scope struct {
	gvr schema.GroupVersionResource
	// namespace restricts a namespaced WatchRule; empty for a
	// ClusterWatchRule.
	namespace string
}

// objectKey identifies an object by group, kind, namespace and name:
// what a file's YAML can tell.
type objectKey struct {
	gk
	namespace, name string
}

type listKey struct {
	gvr       schema.GroupVersionResource
	namespace string
}

// expected is a path some selected object renders to.
type expected struct {
	hash    plumbing.Hash
	content []byte // kept only when the branch differs
}

// Make plans the reconcile of one target. It fails (and nothing must be
// committed) when any selected resource cannot be listed: a missing listing
// would look like deleted objects.
func Make(ctx context.Context, in Input) (*Plan, error) {
	if in.Lister == nil || in.Render == nil {
		return nil, errors.New("reconcile: Lister and Render are required")
	}
	plan := &Plan{}
	tree := make(map[string]plumbing.Hash, len(in.Files))
	for _, f := range in.Files {
		tree[f.Path] = f.Hash
	}
	want := map[string]*expected{}
	scopes := map[gk][]scope{}
	present := map[objectKey]bool{}
	held := map[objectKey]bool{}
	listings := map[listKey]Listing{}

	for _, r := range in.Rules {
		for _, res := range r.Resources {
			ns := ""
			if res.Namespaced {
				ns = r.Namespace
			}
			lk := listKey{gvr: res.GVR, namespace: ns}
			list, ok := listings[lk]
			if !ok {
				var err error
				if list, err = in.Lister.List(ctx, res.GVR, ns); err != nil {
					return nil, fmt.Errorf("reconcile: listing %s: %w", res.GVR.String(), err)
				}
				listings[lk] = list
				plan.Listed += len(list.Items)
			}
			kind := list.Kind
			if kind == "" && len(list.Items) > 0 {
				kind = list.Items[0].GetKind()
			}
			kindOf := gk{group: res.GVR.Group, kind: kind}
			if kind != "" {
				scopes[kindOf] = append(scopes[kindOf], scope{gvr: res.GVR, namespace: r.Namespace})
			}
			for i := range list.Items {
				obj := &list.Items[i]
				if !Selects(r, res.GVR, obj, in.NamespaceLabels) {
					continue
				}
				ref := Ref{GVR: res.GVR, Namespace: obj.GetNamespace(), Name: obj.GetName()}
				okey := objectKey{gk: gk{group: res.GVR.Group, kind: obj.GetKind()}, namespace: ref.Namespace, name: ref.Name}
				if okey.kind == "" {
					okey.kind = kind
				}
				present[okey] = true
				if obj.GetDeletionTimestamp() != nil {
					// Finalizers hold it: its delete removes the file.
					held[okey] = true
					plan.Held = append(plan.Held, Held{Rule: r.Key, Object: ref})
					continue
				}
				if in.Hold != nil && in.Hold(obj) {
					held[okey] = true
					plan.Held = append(plan.Held, Held{Rule: r.Key, Object: ref, Young: true})
					continue
				}
				p, content, err := in.Render(ctx, r, res.GVR, obj)
				if errors.Is(err, ErrNotRecorded) {
					continue
				}
				if err != nil {
					held[okey] = true
					plan.Held = append(plan.Held, Held{Rule: r.Key, Object: ref})
					continue
				}
				h := gitstore.BlobHash(content)
				e := &expected{hash: h}
				if tree[p] != h {
					e.content = content
				}
				want[p] = e
				plan.Placed = append(plan.Placed, Placement{Rule: r.Key, Object: ref, Path: p})
			}
		}
	}

	for p, e := range want {
		old, exists := tree[p]
		switch {
		case exists && old == e.hash:
			plan.Unchanged++
		case exists:
			plan.Updated++
			plan.Writes = append(plan.Writes, gitstore.FileChange{Path: p, Content: e.content})
		default:
			plan.Added++
			plan.Writes = append(plan.Writes, gitstore.FileChange{Path: p, Content: e.content})
		}
	}
	sort.Slice(plan.Writes, func(i, j int) bool { return plan.Writes[i].Path < plan.Writes[j].Path })

	if in.Cache != nil {
		in.Cache.begin()
		defer in.Cache.end()
	}
	for _, f := range in.Files {
		if _, ok := want[f.Path]; ok || !isYAML(f.Path) {
			continue
		}
		id, err := identify(f, in, plan)
		if err != nil {
			return nil, err
		}
		if !id.ok {
			continue
		}
		gvr, managed := managedBy(scopes[id.gk], id.namespace)
		if !managed || held[id.objectKey] {
			continue
		}
		plan.Removals = append(plan.Removals, Removal{Path: f.Path, Hash: f.Hash,
			Object: Ref{GVR: gvr, Namespace: id.namespace, Name: id.name}, Orphan: !present[id.objectKey]})
	}
	sort.Slice(plan.Removals, func(i, j int) bool { return plan.Removals[i].Path < plan.Removals[j].Path })
	return plan, nil
}

// Selects reports whether r selects obj, an existing object of resource
// gvr. The reconcile converges the state of what a rule selects, whichever
// operations the rule records.
func Selects(r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, nsLabels rules.NamespaceLabeler) bool {
	return r.Selects(rules.Request{Resource: gvr.GroupResource(), Namespace: obj.GetNamespace(),
		Labels: labels.Set(obj.GetLabels()), Operation: selectOperation(r)}, nsLabels)
}

// selectOperation is the operation a selection check of an existing object
// asks about: one the rule records.
func selectOperation(r *rules.Rule) v1alpha1.Operation {
	for _, op := range []v1alpha1.Operation{v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete} {
		if len(r.Operations) == 0 || r.Operations[op] {
			return op
		}
	}
	return v1alpha1.OperationCreate
}

// managedBy returns the resource of the first scope that holds namespace.
func managedBy(scopes []scope, namespace string) (schema.GroupVersionResource, bool) {
	for _, s := range scopes {
		if s.namespace == "" || s.namespace == namespace {
			return s.gvr, true
		}
	}
	return schema.GroupVersionResource{}, false
}

func isYAML(p string) bool {
	ext := path.Ext(p)
	return ext == ".yaml" || ext == ".yml"
}

// identity is what a file's YAML says it is; ok is false for anything that
// is not one Kubernetes object.
type identity struct {
	objectKey
	ok bool
}

func identify(f gitstore.FileInfo, in Input, plan *Plan) (identity, error) {
	if id, ok := in.Cache.get(f.Hash); ok {
		return id, nil
	}
	if in.Read == nil {
		return identity{}, nil
	}
	content, found, err := in.Read(f.Path)
	if err != nil {
		return identity{}, fmt.Errorf("reconcile: reading %s: %w", f.Path, err)
	}
	plan.Read++
	id := identity{}
	if found {
		id = parseIdentity(content)
	}
	in.Cache.put(f.Hash, id)
	return id, nil
}

// parseIdentity reads apiVersion, kind, metadata.namespace and
// metadata.name of a YAML document.
func parseIdentity(content []byte) identity {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(content, &head); err != nil {
		return identity{}
	}
	if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
		return identity{}
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil || strings.Contains(head.Kind, "/") {
		return identity{}
	}
	return identity{objectKey: objectKey{gk: gk{group: gv.Group, kind: head.Kind},
		namespace: head.Metadata.Namespace, name: head.Metadata.Name}, ok: true}
}

// IdentityCache remembers what files are by blob hash, so that a file no
// rule writes (a README, a human's notes) is opened once, not at every
// reconcile. It keeps only the entries the last plan used. It is not safe
// for concurrent plans.
type IdentityCache struct {
	cur, next map[plumbing.Hash]identity
}

func (c *IdentityCache) begin() {
	c.next = map[plumbing.Hash]identity{}
}

func (c *IdentityCache) end() {
	c.cur, c.next = c.next, nil
}

func (c *IdentityCache) get(h plumbing.Hash) (identity, bool) {
	if c == nil {
		return identity{}, false
	}
	id, ok := c.cur[h]
	if ok && c.next != nil {
		c.next[h] = id
	}
	return id, ok
}

func (c *IdentityCache) put(h plumbing.Hash, id identity) {
	if c == nil || c.next == nil {
		return
	}
	c.next[h] = id
}
