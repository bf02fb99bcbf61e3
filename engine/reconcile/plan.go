package reconcile

import (
	"bytes"
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
	// seq is the render's place in the plan's order: the latest wins.
	seq seq
}

// ErrListExpired is returned (wrapped) by a PageLister whose listing can
// no longer be finished as one snapshot: the API server expired the
// continue token before the last page (410 Gone, reason Expired, once etcd
// compacted past the first page's resourceVersion). Make drops what it
// took from the listing's pages and lists the resource again from its
// first page.
var ErrListExpired = errors.New("the list's continue token expired before its last page")

// PageLister is a Lister that hands on a listing page by page, so that a
// plan keeps one page of decoded objects at a time instead of all of them
// (20,000 ConfigMaps are about 70 MB as unstructured objects). The pages of
// one call must be one consistent snapshot, as those of a Kubernetes list
// with a limit are: the API server serves every continue at the first
// page's resourceVersion. When that snapshot cannot be finished ListPages
// fails with ErrListExpired; it never goes on with pages of a newer one
// (an inconsistent continue), which could miss an object that moved
// between pages and so plan the removal of its file.
type PageLister interface {
	Lister
	// ListPages calls page with each page of the listing, in order; an
	// error of page stops the listing and is returned. page must not keep
	// the items.
	ListPages(ctx context.Context, gvr schema.GroupVersionResource, namespace string, page func(Listing) error) error
}

// listAttempts bounds how often one resource is listed in a plan when its
// continue tokens keep expiring.
const listAttempts = 3

// seq orders renders as the plan has always visited them: rule by rule,
// resource by resource, object by object in the list's order. A later
// render wins a path, however the pages of a listing that several rules
// read arrive (Held and Placed keep this order by use).
type seq struct{ rule, res, item int }

func (s seq) less(o seq) bool {
	if s.rule != o.rule {
		return s.rule < o.rule
	}
	if s.res != o.res {
		return s.res < o.res
	}
	return s.item < o.item
}

// use is one rule's resource that reads a listing.
type use struct {
	rule, res int
	r         *rules.Rule
	gvr       schema.GroupVersionResource
	// idx is the use's place in its listing's uses.
	idx int
}

// listing is what a plan takes from one listing (a resource in a
// namespace or in all), kept apart until its last page so that an expired
// listing can be dropped and listed again.
type listing struct {
	key  listKey
	uses []use
	kind string
	// listed counts the objects listed so far.
	listed  int
	want    map[string]*expected
	present map[objectKey]bool
	held    map[objectKey]bool
	// helds and placed are per use, each in the list's order.
	helds  [][]Held
	placed [][]Placement
}

func (l *listing) reset() {
	l.kind, l.listed = "", 0
	l.want, l.present, l.held = map[string]*expected{}, map[objectKey]bool{}, map[objectKey]bool{}
	l.helds, l.placed = make([][]Held, len(l.uses)), make([][]Placement, len(l.uses))
}

// Make plans the reconcile of one target. It fails (and nothing must be
// committed) when any selected resource cannot be listed: a missing listing
// would look like deleted objects. With a PageLister it renders and hashes
// each page as it arrives and keeps only paths, blob hashes and the
// content of the files that differ from the branch; the removals are
// judged after the last page of every listing.
func Make(ctx context.Context, in Input) (*Plan, error) {
	if in.Lister == nil || in.Render == nil {
		return nil, errors.New("reconcile: Lister and Render are required")
	}
	plan := &Plan{}
	tree := make(map[string]plumbing.Hash, len(in.Files))
	for _, f := range in.Files {
		tree[f.Path] = f.Hash
	}

	// Each resource (in a namespace or in all) is listed once, in the
	// order the rules first read it; every rule that reads it sees each
	// of its pages.
	var listings []*listing
	byKey := map[listKey]*listing{}
	for i, r := range in.Rules {
		for j, res := range r.Resources {
			lk := listKeyOf(r, res)
			l, ok := byKey[lk]
			if !ok {
				l = &listing{key: lk}
				byKey[lk] = l
				listings = append(listings, l)
			}
			l.uses = append(l.uses, use{rule: i, res: j, r: r, gvr: res.GVR, idx: len(l.uses)})
		}
	}
	for _, l := range listings {
		if err := l.list(ctx, in, tree); err != nil {
			return nil, err
		}
	}

	// The first listing's maps take the others' (no copy of the usual
	// single listing).
	want := map[string]*expected{}
	scopes := map[gk][]scope{}
	present := map[objectKey]bool{}
	held := map[objectKey]bool{}
	for i, l := range listings {
		plan.Listed += l.listed
		if i == 0 {
			want, present, held = l.want, l.present, l.held
			continue
		}
		for p, e := range l.want {
			if old, ok := want[p]; !ok || old.seq.less(e.seq) {
				want[p] = e
			}
		}
		for k := range l.present {
			present[k] = true
		}
		for k := range l.held {
			held[k] = true
		}
	}
	// Rule by rule, resource by resource: each use's part in list order.
	next := map[listKey]int{}
	for _, r := range in.Rules {
		for _, res := range r.Resources {
			lk := listKeyOf(r, res)
			l, u := byKey[lk], next[lk]
			next[lk]++
			plan.Held = append(plan.Held, l.helds[u]...)
			plan.Placed = append(plan.Placed, l.placed[u]...)
			l.helds[u], l.placed[u] = nil, nil
			if l.kind != "" {
				kindOf := gk{group: res.GVR.Group, kind: l.kind}
				scopes[kindOf] = append(scopes[kindOf], scope{gvr: res.GVR, namespace: r.Namespace})
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

// listKeyOf is the listing a rule's resource reads.
func listKeyOf(r *rules.Rule, res rules.Resource) listKey {
	ns := ""
	if res.Namespaced {
		ns = r.Namespace
	}
	return listKey{gvr: res.GVR, namespace: ns}
}

// list takes the listing's objects page by page. When its continue token
// expires it drops what it took and lists again from the first page (at
// most listAttempts times): the pages of one listing are one snapshot, so
// an object can neither be missed (its file would be removed) nor seen
// twice.
func (l *listing) list(ctx context.Context, in Input, tree map[string]plumbing.Hash) error {
	var err error
	for attempt := 1; attempt <= listAttempts; attempt++ {
		l.reset()
		err = listPages(ctx, in.Lister, l.key, func(page Listing) error {
			l.take(ctx, in, tree, page)
			return nil
		})
		if !errors.Is(err, ErrListExpired) {
			break
		}
	}
	switch {
	case errors.Is(err, ErrListExpired):
		return fmt.Errorf("reconcile: listing %s: %d lists in a row could not be finished: %w", l.key.gvr.String(), listAttempts, err)
	case err != nil:
		return fmt.Errorf("reconcile: listing %s: %w", l.key.gvr.String(), err)
	}
	return nil
}

// listPages hands on the listing page by page with a PageLister, else as
// one page.
func listPages(ctx context.Context, lister Lister, key listKey, page func(Listing) error) error {
	if pl, ok := lister.(PageLister); ok {
		return pl.ListPages(ctx, key.gvr, key.namespace, page)
	}
	list, err := lister.List(ctx, key.gvr, key.namespace)
	if err != nil {
		return err
	}
	return page(list)
}

// take renders and hashes one page's objects for every rule that reads
// the listing; it keeps none of the objects.
func (l *listing) take(ctx context.Context, in Input, tree map[string]plumbing.Hash, page Listing) {
	if l.kind == "" {
		l.kind = page.Kind
		if l.kind == "" && len(page.Items) > 0 {
			l.kind = page.Items[0].GetKind()
		}
	}
	for i := range page.Items {
		obj := &page.Items[i]
		item := l.listed
		l.listed++
		for _, u := range l.uses {
			l.takeObject(ctx, in, tree, u, seq{rule: u.rule, res: u.res, item: item}, obj)
		}
	}
}

// takeObject notes what rule u's render of obj expects.
func (l *listing) takeObject(ctx context.Context, in Input, tree map[string]plumbing.Hash, u use, s seq, obj *unstructured.Unstructured) {
	r := u.r
	if !Selects(r, u.gvr, obj, in.NamespaceLabels) {
		return
	}
	ref := Ref{GVR: u.gvr, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	okey := objectKey{gk: gk{group: u.gvr.Group, kind: obj.GetKind()}, namespace: ref.Namespace, name: ref.Name}
	if okey.kind == "" {
		okey.kind = l.kind
	}
	l.present[okey] = true
	if obj.GetDeletionTimestamp() != nil {
		// Finalizers hold it: its delete removes the file.
		l.held[okey] = true
		l.helds[u.idx] = append(l.helds[u.idx], Held{Rule: r.Key, Object: ref})
		return
	}
	if in.Hold != nil && in.Hold(obj) {
		l.held[okey] = true
		l.helds[u.idx] = append(l.helds[u.idx], Held{Rule: r.Key, Object: ref, Young: true})
		return
	}
	p, content, err := in.Render(ctx, r, u.gvr, obj)
	if errors.Is(err, ErrNotRecorded) {
		return
	}
	if err != nil {
		l.held[okey] = true
		l.helds[u.idx] = append(l.helds[u.idx], Held{Rule: r.Key, Object: ref})
		return
	}
	h := gitstore.BlobHash(content)
	e := &expected{hash: h, seq: s}
	if tree[p] != h {
		// Kept until the commit: its own bytes, not the render's
		// buffer (the YAML encoder's starts at 1 KB, several times a
		// small object's file).
		e.content = bytes.Clone(content)
	}
	if old, ok := l.want[p]; !ok || old.seq.less(s) {
		l.want[p] = e
	}
	l.placed[u.idx] = append(l.placed[u.idx], Placement{Rule: r.Key, Object: ref, Path: p})
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
