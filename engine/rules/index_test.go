package rules

import (
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

var (
	configmaps  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func rule(kind Kind, ns, name string, gvr schema.GroupVersionResource, ops ...v1alpha1.Operation) *Rule {
	return &Rule{
		Key:        Key{Kind: kind, Namespace: ns, Name: name},
		Resources:  []Resource{{GVR: gvr, Namespaced: true}},
		Operations: Operations(ops),
		Namespace:  ns,
	}
}

func TestIndex_Match_cases(t *testing.T) {
	team := labels.SelectorFromSet(labels.Set{"team": "a"})
	prod := labels.SelectorFromSet(labels.Set{"env": "prod"})
	ix := NewIndex()
	ix.Upsert(rule(KindWatchRule, "shop", "cms", configmaps))
	ix.Upsert(rule(KindWatchRule, "shop", "deploy-updates", deployments, v1alpha1.OperationUpdate))
	labelled := rule(KindWatchRule, "shop", "team-a", configmaps)
	labelled.Labels = team
	ix.Upsert(labelled)
	cluster := rule(KindClusterWatchRule, "", "prod-cms", configmaps)
	cluster.NamespaceLabels = prod
	ix.Upsert(cluster)

	nsLabels := func(ns string) (labels.Set, bool) {
		switch ns {
		case "shop":
			return labels.Set{"env": "prod"}, true
		case "dev":
			return labels.Set{"env": "dev"}, true
		}
		return nil, false
	}
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"configmap in shop", Request{Resource: configmaps.GroupResource(), Namespace: "shop", Operation: v1alpha1.OperationCreate},
			[]string{"ClusterWatchRule/prod-cms", "WatchRule/shop/cms"}},
		{"labelled configmap", Request{Resource: configmaps.GroupResource(), Namespace: "shop", Labels: labels.Set{"team": "a"}, Operation: v1alpha1.OperationUpdate},
			[]string{"ClusterWatchRule/prod-cms", "WatchRule/shop/cms", "WatchRule/shop/team-a"}},
		{"other namespace, not prod", Request{Resource: configmaps.GroupResource(), Namespace: "dev", Operation: v1alpha1.OperationCreate}, nil},
		{"unknown namespace", Request{Resource: configmaps.GroupResource(), Namespace: "gone", Operation: v1alpha1.OperationCreate}, nil},
		{"deployment update", Request{Resource: deployments.GroupResource(), Namespace: "shop", Operation: v1alpha1.OperationUpdate},
			[]string{"WatchRule/shop/deploy-updates"}},
		{"deployment delete is not selected", Request{Resource: deployments.GroupResource(), Namespace: "shop", Operation: v1alpha1.OperationDelete}, nil},
		{"unselected resource", Request{Resource: schema.GroupResource{Resource: "secrets"}, Namespace: "shop", Operation: v1alpha1.OperationCreate}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range ix.Match(tt.req, nsLabels) {
				got = append(got, r.Key.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIndex_Delete_removesRule(t *testing.T) {
	ix := NewIndex()
	r := rule(KindWatchRule, "shop", "cms", configmaps)
	ix.Upsert(r)
	ch := ix.Subscribe()
	ix.Delete(r.Key)
	select {
	case <-ch:
	default:
		t.Fatal("Delete did not notify subscribers")
	}
	if got := ix.Match(Request{Resource: configmaps.GroupResource(), Namespace: "shop", Operation: v1alpha1.OperationCreate}, nil); len(got) != 0 {
		t.Fatalf("Match after Delete = %v, want none", got)
	}
	rev := ix.Revision()
	ix.Delete(r.Key)
	if ix.Revision() != rev {
		t.Fatal("deleting an absent rule changed the revision")
	}
}

func TestIndex_Resources_unionOfOperations(t *testing.T) {
	ix := NewIndex()
	ix.Upsert(rule(KindWatchRule, "a", "x", deployments, v1alpha1.OperationUpdate))
	ix.Upsert(rule(KindWatchRule, "b", "y", deployments, v1alpha1.OperationDelete))
	use := ix.Resources()[deployments]
	if !use.Operations[v1alpha1.OperationUpdate] || !use.Operations[v1alpha1.OperationDelete] || use.Operations[v1alpha1.OperationCreate] {
		t.Fatalf("operations = %v, want UPDATE and DELETE", use.Operations)
	}
}

// TestIndex_Match_concurrentWriters runs readers against writers; with -race
// it proves the hot path is safe without locks.
func TestIndex_Match_concurrentWriters(t *testing.T) {
	ix := NewIndex()
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r := rule(KindWatchRule, "shop", fmt.Sprintf("r-%d-%d", w, i%10), configmaps)
				ix.Upsert(r)
				if i%3 == 0 {
					ix.Delete(r.Key)
				}
			}
		}(w)
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				for _, r := range ix.Match(Request{Resource: configmaps.GroupResource(), Namespace: "shop", Operation: v1alpha1.OperationCreate}, nil) {
					if r.Key.Namespace != "shop" {
						t.Errorf("unexpected rule %v", r.Key)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkIndex_Match(b *testing.B) {
	ix := NewIndex()
	for i := 0; i < 1000; i++ {
		gvr := schema.GroupVersionResource{Group: "example.dev", Version: "v1", Resource: fmt.Sprintf("things%d", i)}
		ix.Upsert(rule(KindWatchRule, fmt.Sprintf("ns%d", i), "r", gvr))
	}
	ix.Upsert(rule(KindWatchRule, "shop", "cms", configmaps))
	req := Request{Resource: configmaps.GroupResource(), Namespace: "shop", Operation: v1alpha1.OperationUpdate}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(ix.Match(req, nil)) != 1 {
			b.Fatal("no match")
		}
	}
}

func TestIndex_Upsert_keepsActivationAcrossUpdates(t *testing.T) {
	ix := NewIndex()
	first := rule(KindWatchRule, "shop", "cms", configmaps)
	ix.Upsert(first)
	if first.Active.IsZero() {
		t.Fatal("Upsert did not stamp the new rule's activation")
	}
	update := rule(KindWatchRule, "shop", "cms", configmaps)
	update.Generation = 2
	ix.Upsert(update)
	if !update.Active.Equal(first.Active) {
		t.Fatalf("an update moved the activation from %v to %v", first.Active, update.Active)
	}
	ix.Delete(first.Key)
	again := rule(KindWatchRule, "shop", "cms", configmaps)
	ix.Upsert(again)
	if !again.Active.After(first.Active) {
		t.Fatalf("a re-created rule kept the old activation %v", again.Active)
	}
}

func TestIndex_Left_cases(t *testing.T) {
	team := labels.SelectorFromSet(labels.Set{"team": "a"})
	ix := NewIndex()
	ix.Upsert(rule(KindWatchRule, "shop", "all", configmaps))
	labelled := rule(KindWatchRule, "shop", "team-a", configmaps)
	labelled.Labels = team
	ix.Upsert(labelled)
	noDeletes := rule(KindWatchRule, "shop", "team-a-no-deletes", configmaps, v1alpha1.OperationCreate, v1alpha1.OperationUpdate)
	noDeletes.Labels = team
	ix.Upsert(noDeletes)

	tests := []struct {
		name     string
		ns       string
		old, cur labels.Set
		want     []string
	}{
		{"label removed", "shop", labels.Set{"team": "a"}, labels.Set{}, []string{"WatchRule/shop/team-a"}},
		{"label changed", "shop", labels.Set{"team": "a"}, labels.Set{"team": "b"}, []string{"WatchRule/shop/team-a"}},
		{"label kept", "shop", labels.Set{"team": "a"}, labels.Set{"team": "a", "x": "y"}, nil},
		{"label added", "shop", labels.Set{}, labels.Set{"team": "a"}, nil},
		{"never selected", "shop", labels.Set{"team": "b"}, labels.Set{}, nil},
		{"other namespace", "dev", labels.Set{"team": "a"}, labels.Set{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range ix.Left(configmaps.GroupResource(), tt.ns, tt.old, tt.cur, nil) {
				got = append(got, r.Key.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("Left = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIndex_Resources_namespaces(t *testing.T) {
	ix := NewIndex()
	ix.Upsert(rule(KindWatchRule, "shop", "a", configmaps))
	ix.Upsert(rule(KindWatchRule, "dev", "b", configmaps))
	ix.Upsert(rule(KindWatchRule, "shop", "c", deployments))
	ix.Upsert(rule(KindClusterWatchRule, "", "d", deployments))

	uses := ix.Resources()
	if cm := uses[configmaps]; cm.AllNamespaces || !cm.Namespaces["shop"] || !cm.Namespaces["dev"] || len(cm.Namespaces) != 2 {
		t.Fatalf("configmaps: %+v, want namespaces shop and dev only", cm)
	}
	if d := uses[deployments]; !d.AllNamespaces {
		t.Fatalf("deployments: %+v, want all namespaces (a ClusterWatchRule)", d)
	}
}

func TestIndex_ForResource_cases(t *testing.T) {
	cm := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secrets := schema.GroupResource{Resource: "secrets"}
	ix := NewIndex()
	ix.Upsert(&Rule{Key: Key{Kind: KindClusterWatchRule, Name: "b"}, Resources: []Resource{{GVR: cm, Namespaced: true}}})
	ix.Upsert(&Rule{Key: Key{Kind: KindClusterWatchRule, Name: "a"}, Resources: []Resource{{GVR: cm, Namespaced: true}}})
	for _, tc := range []struct {
		name string
		gr   schema.GroupResource
		want string
	}{
		{name: "rules of the resource, by key", gr: cm.GroupResource(), want: "[ClusterWatchRule/a ClusterWatchRule/b]"},
		{name: "no rule", gr: secrets, want: "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys []string
			for _, r := range ix.ForResource(tc.gr) {
				keys = append(keys, r.Key.String())
			}
			if got := fmt.Sprint(keys); got != tc.want {
				t.Fatalf("ForResource = %s, want %s", got, tc.want)
			}
		})
	}
}
