package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

var (
	configMaps  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// fakeLister serves fixed objects per resource; fail names a resource
// whose listing fails.
type fakeLister struct {
	objs  map[schema.GroupVersionResource][]unstructured.Unstructured
	fail  schema.GroupVersionResource
	calls int
}

func (l *fakeLister) List(_ context.Context, gvr schema.GroupVersionResource, ns string) (Listing, error) {
	l.calls++
	if gvr == l.fail {
		return Listing{}, errors.New("forbidden")
	}
	kind := map[string]string{"configmaps": "ConfigMap", "deployments": "Deployment"}[gvr.Resource]
	var out []unstructured.Unstructured
	for _, o := range l.objs[gvr] {
		if ns == "" || o.GetNamespace() == ns {
			out = append(out, *o.DeepCopy())
		}
	}
	return Listing{Kind: kind, Items: out}, nil
}

func object(gvr schema.GroupVersionResource, ns, name string, lbls map[string]string, data string) unstructured.Unstructured {
	kind, apiVersion := "ConfigMap", "v1"
	if gvr == deployments {
		kind, apiVersion = "Deployment", "apps/v1"
	}
	o := unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "uid-" + name, "resourceVersion": "1"},
		"data":     map[string]any{"v": data},
	}}
	if lbls != nil {
		o.SetLabels(lbls)
	}
	return o
}

// renderDefault is the built-in stages: sanitizer, YAML and the default
// layout under "cluster".
func renderDefault(_ context.Context, _ *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (string, []byte, error) {
	clean, err := transform.Sanitize(obj, transform.Options{})
	if err != nil {
		return "", nil, err
	}
	content, err := transform.Marshal(clean)
	if err != nil {
		return "", nil, err
	}
	return transform.DefaultPath("cluster", gvr, obj.GetNamespace(), obj.GetName()), content, nil
}

// repo is a branch's files in memory.
type repo struct {
	files map[string][]byte
	reads int
}

func repoOf(t *testing.T, objs []unstructured.Unstructured, extra map[string]string) *repo {
	t.Helper()
	r := &repo{files: map[string][]byte{}}
	for i := range objs {
		gvr := configMaps
		if objs[i].GetKind() == "Deployment" {
			gvr = deployments
		}
		p, content, err := renderDefault(context.Background(), nil, gvr, &objs[i])
		if err != nil {
			t.Fatal(err)
		}
		r.files[p] = content
	}
	for p, c := range extra {
		r.files[p] = []byte(c)
	}
	return r
}

func (r *repo) list() []gitstore.FileInfo {
	var out []gitstore.FileInfo
	for p, c := range r.files {
		out = append(out, gitstore.FileInfo{Path: p, Hash: gitstore.BlobHash(c)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (r *repo) read(p string) ([]byte, bool, error) {
	r.reads++
	c, ok := r.files[p]
	return c, ok, nil
}

func shopRule(selector string) *rules.Rule {
	r := &rules.Rule{
		Key:       rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "record"},
		Namespace: "shop",
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}, {GVR: deployments, Namespaced: true}},
	}
	if selector != "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			panic(err)
		}
		r.Labels = sel
	}
	return r
}

const (
	readme      = "cluster/README.md"
	notes       = "cluster/shop/notes.yaml"
	unselected  = "cluster/shop/core/services/web.yaml"
	otherNS     = "cluster/other/core/configmaps/theirs.yaml"
	serviceYAML = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
	otherYAML   = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: theirs\n  namespace: other\n"
)

func humanFiles() map[string]string {
	return map[string]string{
		readme:     "# our cluster\n",
		notes:      "just: some notes\n",
		unselected: serviceYAML,
		otherNS:    otherYAML,
	}
}

func TestMake_cases(t *testing.T) {
	a := object(configMaps, "shop", "a", map[string]string{"keep": "yes"}, "1")
	b := object(configMaps, "shop", "b", map[string]string{"keep": "yes"}, "1")
	web := object(deployments, "shop", "web", map[string]string{"keep": "yes"}, "1")
	bChanged := object(configMaps, "shop", "b", map[string]string{"keep": "yes"}, "2")
	bRelabeled := object(configMaps, "shop", "b", map[string]string{"keep": "no"}, "1")
	c := object(configMaps, "shop", "c", map[string]string{"keep": "yes"}, "1")
	path := func(o unstructured.Unstructured) string {
		gvr := configMaps
		if o.GetKind() == "Deployment" {
			gvr = deployments
		}
		return transform.DefaultPath("cluster", gvr, o.GetNamespace(), o.GetName())
	}

	type want struct {
		writes   []string
		added    int
		updated  int
		removals []string
		orphans  []bool
		held     int
	}
	cases := []struct {
		name     string
		rule     *rules.Rule
		cluster  []unstructured.Unstructured
		inRepo   []unstructured.Unstructured
		extra    map[string]string
		hold     func(*unstructured.Unstructured) bool
		render   RenderFunc
		want     want
		wantRead int
	}{
		{name: "matches", rule: shopRule(""), cluster: []unstructured.Unstructured{a, b, web},
			inRepo: []unstructured.Unstructured{a, b, web}, extra: humanFiles(), want: want{}},
		{name: "added, updated and removed", rule: shopRule(""), cluster: []unstructured.Unstructured{a, bChanged, c},
			inRepo: []unstructured.Unstructured{a, b, web}, extra: humanFiles(),
			want: want{writes: []string{path(b), path(c)}, added: 1, updated: 1, removals: []string{path(web)}, orphans: []bool{true}}},
		{name: "an object that left the label selector is removed", rule: shopRule("keep=yes"), cluster: []unstructured.Unstructured{a, bRelabeled},
			inRepo: []unstructured.Unstructured{a, b}, extra: humanFiles(),
			want: want{removals: []string{path(b)}, orphans: []bool{true}}},
		{name: "an empty repository gets every object", rule: shopRule(""), cluster: []unstructured.Unstructured{a, web},
			want: want{writes: []string{path(web), path(a)}, added: 2}},
		{name: "a young object keeps its file as it is", rule: shopRule(""), cluster: []unstructured.Unstructured{a, bChanged},
			inRepo: []unstructured.Unstructured{a, b},
			hold:   func(o *unstructured.Unstructured) bool { return o.GetName() == "b" },
			want:   want{held: 1}},
		{name: "a failing render keeps the file as it is", rule: shopRule(""), cluster: []unstructured.Unstructured{a, bChanged},
			inRepo: []unstructured.Unstructured{a, b},
			render: func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, o *unstructured.Unstructured) (string, []byte, error) {
				if o.GetName() == "b" {
					return "", nil, errors.New("sanitizer timed out")
				}
				return renderDefault(ctx, r, gvr, o)
			},
			want: want{held: 1}},
		{name: "an object the policy does not record loses its file", rule: shopRule(""), cluster: []unstructured.Unstructured{a, b},
			inRepo: []unstructured.Unstructured{a, b},
			render: func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, o *unstructured.Unstructured) (string, []byte, error) {
				if o.GetName() == "b" {
					return "", nil, fmt.Errorf("policy: %w", ErrNotRecorded)
				}
				return renderDefault(ctx, r, gvr, o)
			},
			want: want{removals: []string{path(b)}, orphans: []bool{false}}},
		{name: "a layout move writes the new path and removes the old", rule: shopRule(""), cluster: []unstructured.Unstructured{a},
			inRepo: []unstructured.Unstructured{a},
			render: func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, o *unstructured.Unstructured) (string, []byte, error) {
				_, content, err := renderDefault(ctx, r, gvr, o)
				return "cluster/moved/" + o.GetName() + ".yaml", content, err
			},
			want: want{writes: []string{"cluster/moved/a.yaml"}, added: 1, removals: []string{path(a)}, orphans: []bool{false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lister := &fakeLister{objs: map[schema.GroupVersionResource][]unstructured.Unstructured{}}
			for _, o := range tc.cluster {
				gvr := configMaps
				if o.GetKind() == "Deployment" {
					gvr = deployments
				}
				lister.objs[gvr] = append(lister.objs[gvr], o)
			}
			r := repoOf(t, tc.inRepo, tc.extra)
			render := tc.render
			if render == nil {
				render = renderDefault
			}
			plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{tc.rule}, Lister: lister, Render: render,
				Files: r.list(), Read: r.read, Hold: tc.hold})
			if err != nil {
				t.Fatal(err)
			}
			var writes, removals []string
			var orphans []bool
			for _, w := range plan.Writes {
				writes = append(writes, w.Path)
			}
			for _, rm := range plan.Removals {
				removals = append(removals, rm.Path)
				orphans = append(orphans, rm.Orphan)
			}
			got := want{writes: writes, added: plan.Added, updated: plan.Updated, removals: removals, orphans: orphans, held: len(plan.Held)}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %+v, want %+v", got, tc.want)
			}
			for _, p := range removals {
				if _, human := humanFiles()[p]; human {
					t.Fatalf("the plan removes %s, which no rule manages", p)
				}
			}
		})
	}
}

// TestMake_unchangedFilesCostNoRead: against a branch that matches, the
// plan opens only the files no selected object renders to, and with a
// cache it opens them once.
func TestMake_unchangedFilesCostNoRead(t *testing.T) {
	objs := []unstructured.Unstructured{object(configMaps, "shop", "a", nil, "1"), object(deployments, "shop", "web", nil, "1")}
	lister := &fakeLister{objs: map[schema.GroupVersionResource][]unstructured.Unstructured{configMaps: objs[:1], deployments: objs[1:]}}
	r := repoOf(t, objs, humanFiles())
	cache := &IdentityCache{}
	for i, wantReads := range []int{3, 0, 0} { // notes, the Service and the other namespace's ConfigMap; the README is no YAML
		r.reads = 0
		plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule("")}, Lister: lister, Render: renderDefault,
			Files: r.list(), Read: r.read, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Writes)+len(plan.Removals) != 0 || plan.Unchanged != 2 {
			t.Fatalf("plan %d: %d writes, %d removals, %d unchanged; want 0, 0, 2", i, len(plan.Writes), len(plan.Removals), plan.Unchanged)
		}
		if r.reads != wantReads {
			t.Fatalf("plan %d read %d files, want %d", i, r.reads, wantReads)
		}
	}
}

// TestMake_listErrorPlansNothing: a resource that cannot be listed must not
// look like deleted objects.
func TestMake_listErrorPlansNothing(t *testing.T) {
	objs := []unstructured.Unstructured{object(configMaps, "shop", "a", nil, "1"), object(deployments, "shop", "web", nil, "1")}
	lister := &fakeLister{objs: map[schema.GroupVersionResource][]unstructured.Unstructured{configMaps: objs[:1]}, fail: deployments}
	r := repoOf(t, objs, nil)
	plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule("")}, Lister: lister, Render: renderDefault,
		Files: r.list(), Read: r.read})
	if err == nil || !strings.Contains(err.Error(), "forbidden") || plan != nil {
		t.Fatalf("Make = %v, %v; want no plan and the listing's error", plan, err)
	}
}

// TestMake_clusterRuleScope: a ClusterWatchRule manages its kinds in every
// namespace; a WatchRule only in its own.
func TestMake_clusterRuleScope(t *testing.T) {
	cluster := &rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "all"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}}
	lister := &fakeLister{objs: map[schema.GroupVersionResource][]unstructured.Unstructured{}}
	r := repoOf(t, nil, humanFiles())
	for _, tc := range []struct {
		rule *rules.Rule
		want []string
	}{
		{rule: cluster, want: []string{otherNS}},
		{rule: shopRule(""), want: nil},
	} {
		plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{tc.rule}, Lister: lister, Render: renderDefault,
			Files: r.list(), Read: r.read})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rm := range plan.Removals {
			got = append(got, rm.Path)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s removes %v, want %v", tc.rule.Key, got, tc.want)
		}
	}
}

// TestMake_beingDeletedIsHeld: an object that finalizers hold keeps its
// file until its delete.
func TestMake_beingDeletedIsHeld(t *testing.T) {
	a := object(configMaps, "shop", "a", nil, "1")
	changed := object(configMaps, "shop", "a", nil, "2")
	now := metav1.Now()
	changed.SetDeletionTimestamp(&now)
	lister := &fakeLister{objs: map[schema.GroupVersionResource][]unstructured.Unstructured{configMaps: {changed}}}
	r := repoOf(t, []unstructured.Unstructured{a}, nil)
	plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{shopRule("")}, Lister: lister, Render: renderDefault,
		Files: r.list(), Read: r.read})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Writes)+len(plan.Removals) != 0 || len(plan.Held) != 1 || plan.Held[0].Young {
		t.Fatalf("plan = %+v; want the object held and nothing changed", plan)
	}
}

func TestParseIdentity_cases(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want identity
	}{
		{in: serviceYAML, want: identity{objectKey: objectKey{gk: gk{kind: "Service"}, namespace: "shop", name: "web"}, ok: true}},
		{in: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n", want: identity{objectKey: objectKey{gk: gk{group: "apps", kind: "Deployment"}, name: "web"}, ok: true}},
		{in: "just: notes\n"},
		{in: "- a\n- b\n"},
		{in: "apiVersion: v1\nkind: ConfigMap\n"},
		{in: ": not yaml ["},
		{in: "apiVersion: a/b/c\nkind: X\nmetadata:\n  name: n\n"},
	} {
		if got := parseIdentity([]byte(tc.in)); got != tc.want {
			t.Errorf("parseIdentity(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
