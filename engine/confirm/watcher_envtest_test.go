package confirm

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

// cachedByNamespace counts the objects the watcher's informers hold, by
// namespace, and lists the namespaces the informers watch ("" for
// cluster-wide).
func cachedByNamespace(w *Watcher) (counts map[string]int, watched []string) {
	w.infMu.Lock()
	defer w.infMu.Unlock()
	counts = map[string]int{}
	for key, ri := range w.informers {
		watched = append(watched, key.namespace)
		for _, o := range ri.informer.GetStore().List() {
			if u, ok := o.(*unstructured.Unstructured); ok {
				counts[u.GetNamespace()]++
			}
		}
	}
	sort.Strings(watched)
	return counts, watched
}

// TestWatcher_Start_namespacedRuleCachesOnlyItsNamespace runs the watcher
// against a real kube-apiserver: a WatchRule's informer lists only its
// namespace; a ClusterWatchRule for the same resource turns it into one
// cluster-wide informer, and back when it goes.
func TestWatcher_Start_namespacedRuleCachesOnlyItsNamespace(t *testing.T) {
	env, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	kube, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for ns, n := range map[string]int{"mine": 2, "others": 3} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)}}
			if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key:       rules.Key{Kind: rules.KindWatchRule, Namespace: "mine", Name: "r"},
		Namespace: "mine",
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}},
	})
	var gapMu sync.Mutex
	var gaps []string
	w, err := NewWatcher(Options{Client: dyn, Index: ix, Store: NewStore(StoreOptions{}), Sink: &recordingSink{},
		OnGap: func(grs []schema.GroupResource) {
			gapMu.Lock()
			defer gapMu.Unlock()
			gaps = append(gaps, fmt.Sprint(grs))
		}})
	gapsSoFar := func() string {
		gapMu.Lock()
		defer gapMu.Unlock()
		return strings.Join(gaps, ";")
	}
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Start(runCtx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	eventually(t, "the namespaced informer synced", w.Synced)
	counts, watched := cachedByNamespace(w)
	if fmt.Sprint(watched) != "[mine]" || fmt.Sprint(counts) != "map[mine:2]" {
		t.Fatalf("a WatchRule in mine: informers %q hold %v, want [mine] holding map[mine:2]", watched, counts)
	}
	if g := gapsSoFar(); g != "" {
		t.Fatalf("gaps reported before any informer was replaced: %s", g)
	}

	cluster := rules.Key{Kind: rules.KindClusterWatchRule, Name: "c"}
	ix.Upsert(&rules.Rule{Key: cluster, Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}})
	eventually(t, "one cluster-wide informer", func() bool {
		_, watched := cachedByNamespace(w)
		return w.Synced() && fmt.Sprint(watched) == "[]"
	})
	if counts, _ := cachedByNamespace(w); counts["others"] != 3 || counts["mine"] != 2 {
		t.Fatalf("the cluster-wide informer holds %v, want others:3 and mine:2 among them", counts)
	}
	// The namespace's informer stopped before the cluster-wide one
	// listed: the gap is reported for the reconcile to catch up.
	if g := gapsSoFar(); g != "[configmaps]" {
		t.Fatalf("gaps = %q, want one for configmaps", g)
	}

	ix.Delete(cluster)
	eventually(t, "back to the namespaced informer", func() bool {
		counts, watched := cachedByNamespace(w)
		return w.Synced() && fmt.Sprint(watched) == "[mine]" && fmt.Sprint(counts) == "map[mine:2]"
	})
	if g := gapsSoFar(); g != "[configmaps];[configmaps]" {
		t.Fatalf("gaps = %q, want a second one for configmaps", g)
	}
}

// TestWantedInformers_cases: one informer per resource and namespace, or
// one cluster-wide, one version per resource.
func TestWantedInformers_cases(t *testing.T) {
	uses := map[string]rules.ResourceUse{
		"namespaced": {Namespaced: true, Namespaces: map[string]bool{"a": true, "b": true}},
		"cluster":    {Namespaced: true, AllNamespaces: true, Namespaces: map[string]bool{"a": true}},
	}
	tests := []struct {
		name string
		use  string
		want string
	}{
		{"WatchRules in two namespaces", "namespaced", "[configmaps in a configmaps in b]"},
		{"a ClusterWatchRule makes one cluster-wide informer", "cluster", "[configmaps]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wantedInformers(map[schema.GroupVersionResource]rules.ResourceUse{configMaps: uses[tt.use]})
			var keys []string
			for k, gvr := range got {
				if gvr != configMaps {
					t.Errorf("version %v, want %v", gvr, configMaps)
				}
				keys = append(keys, k.String())
			}
			sort.Strings(keys)
			if fmt.Sprint(keys) != tt.want {
				t.Fatalf("informers %v, want %s", keys, tt.want)
			}
		})
	}
}

// TestWatcher_Start_initialListPairsCreateClaims runs the watcher against
// a real kube-apiserver: ConfigMaps written where no informer watches are
// in the initial list of the cluster-wide informer a new ClusterWatchRule
// starts; the one whose create claim the webhook still holds, with its
// content, is handed on with the claim's author, the others are left to
// the reconcile (nothing handed on, the watch done with them).
func TestWatcher_Start_initialListPairsCreateClaims(t *testing.T) {
	env, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	kube, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(StoreOptions{})
	alice := user("alice")
	uids := map[string]string{}
	for _, ns := range []string{"mine", "others"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"claimed", "older-claim", "unclaimed"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "others", Name: name}, Data: map[string]string{"v": name}}
		created, err := kube.CoreV1().ConfigMaps("others").Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(created.UID)
		obj := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]interface{}{"name": name, "namespace": "others", "uid": string(created.UID)},
			"data":     map[string]interface{}{"v": name},
		}}
		switch name {
		case "claimed":
			store.AddPending(create(t, alice, obj))
		case "older-claim":
			obj.Object["data"] = map[string]interface{}{"v": "before"}
			store.AddPending(create(t, alice, obj))
		}
	}

	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key:       rules.Key{Kind: rules.KindWatchRule, Namespace: "mine", Name: "r"},
		Namespace: "mine",
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}},
	})
	sink := &recordingSink{}
	w, err := NewWatcher(Options{Client: dyn, Index: ix, Store: store, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Start(runCtx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, "the namespaced informer synced", w.Synced)

	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "c"}, Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}})
	eventually(t, "the cluster-wide informer synced, done with every object", func() bool {
		_, watched := cachedByNamespace(w)
		if !w.Synced() || fmt.Sprint(watched) != "[]" {
			return false
		}
		for _, uid := range uids {
			if _, ok := w.Handed(types.UID(uid)); !ok {
				return false
			}
		}
		return true
	})
	var got []string
	for _, c := range sink.snapshot() {
		got = append(got, fmt.Sprintf("%s %s/%s by %s", c.Operation, c.Namespace, c.Name, c.User.Username))
	}
	if fmt.Sprint(got) != "[CREATE others/claimed by alice]" {
		t.Fatalf("handed on %q, want only others/claimed's CREATE by alice", got)
	}
	if n := store.Len(); n != 0 {
		t.Fatalf("claims left = %d, want 0 (both settled by the list)", n)
	}
}
