package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// pageLister serves a fakeLister's objects page by page as the API server
// does: the first page takes a snapshot and every continue reads it.
// afterPage runs after each page Make took (it may change the cluster);
// the continue tokens of the next expire listings expire after their first
// page.
type pageLister struct {
	*fakeLister
	size      int
	expire    int
	afterPage func(n int)
	lists     map[schema.GroupVersionResource]int
	pages     int
}

func newPageLister(objs map[schema.GroupVersionResource][]unstructured.Unstructured, size int) *pageLister {
	return &pageLister{fakeLister: &fakeLister{objs: objs}, size: size, lists: map[schema.GroupVersionResource]int{}}
}

func (l *pageLister) ListPages(ctx context.Context, gvr schema.GroupVersionResource, ns string, page func(Listing) error) error {
	l.lists[gvr]++
	snap, err := l.List(ctx, gvr, ns)
	if err != nil {
		return err
	}
	expire := l.expire > 0
	if expire {
		l.expire--
	}
	for i := 0; ; i += l.size {
		if i > 0 && expire {
			return fmt.Errorf("listing %s: %w", gvr.Resource, ErrListExpired)
		}
		end := min(i+l.size, len(snap.Items))
		if err := page(Listing{Kind: snap.Kind, Items: snap.Items[i:end]}); err != nil {
			return err
		}
		l.pages++
		if l.afterPage != nil {
			l.afterPage(l.pages)
		}
		if end == len(snap.Items) {
			return nil
		}
	}
}

// remove deletes the object name of gvr from the fake cluster.
func (l *fakeLister) remove(gvr schema.GroupVersionResource, name string) {
	var keep []unstructured.Unstructured
	for _, o := range l.objs[gvr] {
		if o.GetName() != name {
			keep = append(keep, o)
		}
	}
	l.objs[gvr] = keep
}

// replace swaps the object of the same name in the fake cluster.
func (l *fakeLister) replace(gvr schema.GroupVersionResource, obj unstructured.Unstructured) {
	for i, o := range l.objs[gvr] {
		if o.GetName() == obj.GetName() {
			l.objs[gvr][i] = obj
		}
	}
}

// TestMake_pages_planEqualsOneList: planning page by page gives the plan of
// one whole list, byte for byte and in the same order, whatever the page
// size: with two rules reading one listing (the later rule wins a path they
// share), a held object, one being deleted, a failing render, files to
// update and the file of a deleted object to remove.
func TestMake_pages_planEqualsOneList(t *testing.T) {
	second := shopRule("keep=yes")
	second.Key.Name = "second"
	deleting := object(configMaps, "shop", "d", map[string]string{"keep": "yes"}, "1")
	now := metav1.Now()
	deleting.SetDeletionTimestamp(&now)
	cluster := map[schema.GroupVersionResource][]unstructured.Unstructured{
		configMaps: {
			object(configMaps, "shop", "a", map[string]string{"keep": "yes"}, "2"),
			object(configMaps, "shop", "b", nil, "1"),
			object(configMaps, "shop", "c", map[string]string{"keep": "yes"}, "1"),
			deleting,
			object(configMaps, "shop", "e", map[string]string{"keep": "yes"}, "1"),
			object(configMaps, "shop", "f", map[string]string{"keep": "yes"}, "1"),
			object(configMaps, "shop", "young", map[string]string{"keep": "yes"}, "2"),
		},
		deployments: {object(deployments, "shop", "web", map[string]string{"keep": "yes"}, "1")},
	}
	inRepo := []unstructured.Unstructured{
		object(configMaps, "shop", "a", map[string]string{"keep": "yes"}, "1"),
		object(configMaps, "shop", "b", nil, "1"),
		object(configMaps, "shop", "d", nil, "1"),
		object(configMaps, "shop", "gone", nil, "1"),
		object(configMaps, "shop", "young", nil, "1"),
	}
	render := func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, o *unstructured.Unstructured) (string, []byte, error) {
		if o.GetName() == "e" {
			return "", nil, errors.New("sanitizer timed out")
		}
		p, content, err := renderDefault(ctx, r, gvr, o)
		if r.Key.Name == "second" {
			content = append(content, "# by the second rule\n"...)
		}
		// Two objects at one path: the second rule's a (listed first)
		// wins over the first rule's b (listed after it).
		if (r.Key.Name == "second" && o.GetName() == "a") || (r.Key.Name != "second" && o.GetName() == "b") {
			p = "cluster/shared.yaml"
		}
		return p, content, err
	}
	hold := func(o *unstructured.Unstructured) bool { return o.GetName() == "young" }
	plan := func(t *testing.T, lister Lister) *Plan {
		t.Helper()
		r := repoOf(t, inRepo, humanFiles())
		p, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule(""), second}, Lister: lister, Render: render,
			Files: r.list(), Read: r.read, Hold: hold})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := plan(t, &fakeLister{objs: cluster})
	if len(want.Writes) == 0 || len(want.Removals) == 0 || len(want.Held) != 6 || want.Listed != 8 {
		t.Fatalf("the one-list plan does not exercise the cases: %d writes, %d removals, %d held, %d listed",
			len(want.Writes), len(want.Removals), len(want.Held), want.Listed)
	}
	shared := ""
	for _, w := range want.Writes {
		if w.Path == "cluster/shared.yaml" {
			shared = string(w.Content)
		}
	}
	if !strings.Contains(shared, "name: a\n") || !strings.HasSuffix(shared, "# by the second rule\n") {
		t.Fatalf("cluster/shared.yaml = %q, want the second rule's a (the later rule wins)", shared)
	}
	for _, size := range []int{1, 2, 3, 100} {
		t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
			lister := newPageLister(cluster, size)
			got := plan(t, lister)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("plan by pages of %d =\n%+v\nwant\n%+v", size, got, want)
			}
			if lister.lists[configMaps] != 1 || lister.lists[deployments] != 1 {
				t.Fatalf("listed %v, want each resource once for both rules", lister.lists)
			}
		})
	}
}

// TestMake_pages_expiredContinueRelists: a continue token that expires
// mid-list drops what the plan took from the first pages and lists again
// from the start: the plan is the new snapshot's (the updated object's new
// content, the removal of an object deleted in between), with nothing
// stale or counted twice.
func TestMake_pages_expiredContinueRelists(t *testing.T) {
	a1 := object(configMaps, "shop", "a", nil, "1")
	a2 := object(configMaps, "shop", "a", nil, "2")
	objs := []unstructured.Unstructured{a1, object(configMaps, "shop", "b", nil, "1"),
		object(configMaps, "shop", "c", nil, "1"), object(configMaps, "shop", "d", nil, "1")}
	lister := newPageLister(map[schema.GroupVersionResource][]unstructured.Unstructured{configMaps: objs}, 2)
	lister.expire = 1
	lister.afterPage = func(n int) {
		if n == 1 { // a was taken at version 1; then a changes and c goes
			lister.replace(configMaps, a2)
			lister.remove(configMaps, "c")
		}
	}
	r := repoOf(t, append(objs, object(configMaps, "shop", "gone", nil, "1")), nil)
	plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule("")}, Lister: lister, Render: renderDefault,
		Files: r.list(), Read: r.read})
	if err != nil {
		t.Fatal(err)
	}
	if lister.lists[configMaps] != 2 {
		t.Fatalf("listed ConfigMaps %d times, want 2 (the expired list and a full re-list)", lister.lists[configMaps])
	}
	aPath, a2Content, _ := renderDefault(context.Background(), nil, configMaps, &a2)
	var removals []string
	for _, rm := range plan.Removals {
		removals = append(removals, rm.Path)
	}
	wantRemovals := []string{"cluster/shop/core/configmaps/c.yaml", "cluster/shop/core/configmaps/gone.yaml"}
	switch {
	case len(plan.Writes) != 1 || plan.Writes[0].Path != aPath || string(plan.Writes[0].Content) != string(a2Content):
		t.Fatalf("writes = %+v, want only %s at version 2", plan.Writes, aPath)
	case !reflect.DeepEqual(removals, wantRemovals):
		t.Fatalf("removals = %v, want %v", removals, wantRemovals)
	case plan.Listed != 3 || len(plan.Placed) != 3 || plan.Unchanged != 2:
		t.Fatalf("listed %d, placed %d, unchanged %d; want 3, 3, 2 (the re-list only)", plan.Listed, len(plan.Placed), plan.Unchanged)
	}
}

// TestMake_pages_expiredEveryTimeFails: when every list expires before its
// last page the plan fails, clearly and with ErrListExpired, after
// listAttempts full lists: nothing is committed.
func TestMake_pages_expiredEveryTimeFails(t *testing.T) {
	objs := []unstructured.Unstructured{object(configMaps, "shop", "a", nil, "1"), object(configMaps, "shop", "b", nil, "1")}
	lister := newPageLister(map[schema.GroupVersionResource][]unstructured.Unstructured{configMaps: objs}, 1)
	lister.expire = 100
	r := repoOf(t, append(objs, object(configMaps, "shop", "gone", nil, "1")), nil)
	plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule("")}, Lister: lister, Render: renderDefault,
		Files: r.list(), Read: r.read})
	if !errors.Is(err, ErrListExpired) || plan != nil {
		t.Fatalf("Make = %v, %v; want no plan and ErrListExpired", plan, err)
	}
	if lister.lists[configMaps] != listAttempts {
		t.Fatalf("listed %d times, want %d", lister.lists[configMaps], listAttempts)
	}
}

// TestMake_pages_objectDeletedBetweenPages: an object deleted after the
// first page was handed on, on that page or a later one, is in the
// listing's snapshot: its file stays (its delete event removes it with its
// author), and no removal is planned before the last page.
func TestMake_pages_objectDeletedBetweenPages(t *testing.T) {
	objs := []unstructured.Unstructured{object(configMaps, "shop", "a", nil, "1"), object(configMaps, "shop", "b", nil, "1"),
		object(configMaps, "shop", "c", nil, "1"), object(configMaps, "shop", "d", nil, "1")}
	lister := newPageLister(map[schema.GroupVersionResource][]unstructured.Unstructured{configMaps: objs}, 2)
	lister.afterPage = func(n int) {
		if n == 1 {
			lister.remove(configMaps, "a") // on the page taken
			lister.remove(configMaps, "c") // on the next page
		}
	}
	r := repoOf(t, objs, nil)
	plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule("")}, Lister: lister, Render: renderDefault,
		Files: r.list(), Read: r.read})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Writes)+len(plan.Removals) != 0 || plan.Unchanged != 4 || plan.Listed != 4 {
		t.Fatalf("plan: %d writes, %d removals, %d unchanged, %d listed; want 0, 0, 4, 4",
			len(plan.Writes), len(plan.Removals), plan.Unchanged, plan.Listed)
	}
}
