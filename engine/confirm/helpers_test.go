package confirm

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

var (
	configMaps  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// recordingSink collects the changes handed on.
type recordingSink struct {
	mu      sync.Mutex
	changes []change.Change
}

func (s *recordingSink) Record(_ context.Context, c change.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, c)
}

func (s *recordingSink) snapshot() []change.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]change.Change(nil), s.changes...)
}

// newTestWatcher returns a watcher without informers whose grace worker
// runs until the test ends; the index selects ConfigMaps and Deployments
// unless labelled app=ignored.
func newTestWatcher(t *testing.T, grace time.Duration, store *Store) (*Watcher, *recordingSink) {
	t.Helper()
	sel, err := labels.Parse("app!=ignored")
	if err != nil {
		t.Fatal(err)
	}
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key:       rules.Key{Kind: rules.KindClusterWatchRule, Name: "all"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}, {GVR: deployments, Namespaced: true}},
		Labels:    sel,
	})
	sink := &recordingSink{}
	w := newWatcher(Options{Index: ix, Store: store, Sink: sink, Grace: grace, MaxWaiting: DefaultMaxWaiting, SweepInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.runGrace(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w, sink
}

func configMap(uid, rv, value string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]interface{}{
			"name": "settings", "namespace": "team", "uid": uid, "resourceVersion": rv,
		},
		"data": map[string]interface{}{"value": value},
	}}
	return u
}

func deployment(uid, rv string, replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": map[string]interface{}{
			"name": "web", "namespace": "team", "uid": uid, "resourceVersion": rv,
		},
		"spec": map[string]interface{}{"replicas": replicas},
	}}
}

func withLabel(u *unstructured.Unstructured, k, v string) *unstructured.Unstructured {
	u.SetLabels(map[string]string{k: v})
	return u
}

func deleting(u *unstructured.Unstructured, finalizers ...string) *unstructured.Unstructured {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	u.SetDeletionTimestamp(&now)
	u.SetFinalizers(finalizers)
	return u
}

func fingerprint(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	fp, err := transform.Fingerprint(u)
	if err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	return fp
}

func user(name string, groups ...string) change.User {
	if len(groups) == 0 {
		groups = []string{"system:authenticated"}
	}
	return change.User{Username: name, Groups: groups}
}

// update is the claim of an UPDATE that would store obj, from oldRV.
func update(t *testing.T, u change.User, oldRV string, obj *unstructured.Unstructured) change.Pending {
	return change.Pending{
		User: u, Operation: v1alpha1.OperationUpdate, Resource: configMaps,
		Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(),
		OldResourceVersion: oldRV, Fingerprint: fingerprint(t, obj),
	}
}

func create(t *testing.T, u change.User, obj *unstructured.Unstructured) change.Pending {
	return change.Pending{
		User: u, Operation: v1alpha1.OperationCreate, Resource: configMaps,
		Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(),
		Fingerprint: fingerprint(t, obj),
	}
}

func scale(u change.User, uid types.UID, oldRV string, replicas int64) change.Pending {
	return change.Pending{
		User: u, Operation: v1alpha1.OperationUpdate, Resource: deployments, SubResource: admission.SubresourceScale,
		Namespace: "team", Name: "web", UID: uid, OldResourceVersion: oldRV,
		Fingerprint: admission.ScaleFingerprint(replicas),
	}
}

func deletion(u change.User, uid types.UID, oldRV string) change.Pending {
	return change.Pending{
		User: u, Operation: v1alpha1.OperationDelete, Resource: configMaps,
		Namespace: "team", Name: "settings", UID: uid, OldResourceVersion: oldRV,
	}
}

// counterValue reads a counter of this package's metrics.
func counterValue(t *testing.T, c interface{ Value() float64 }) float64 {
	t.Helper()
	return c.Value()
}

// eventually polls cond generously: the machine may be loaded.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
