package confirm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

var secrets = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

func secret(uid, rv, value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]interface{}{
			"name": "token", "namespace": "team", "uid": uid, "resourceVersion": rv,
		},
		"type": "Opaque",
		"data": map[string]interface{}{"token": value},
	}}
}

// review is an AdmissionReview the API server would send for a CREATE of
// obj by u; dryRun marks a server-side dry run.
func review(t *testing.T, u change.User, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, dryRun bool) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]interface{}{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]interface{}{
			"uid": "req-" + obj.GetName(), "operation": "CREATE", "namespace": obj.GetNamespace(), "name": obj.GetName(),
			"resource": map[string]string{"group": gvr.Group, "version": gvr.Version, "resource": gvr.Resource},
			"userInfo": map[string]interface{}{"username": u.Username, "groups": u.Groups},
			"object":   obj.Object,
			"dryRun":   dryRun,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listedStep is one thing that happens before (or after) the informer
// lists the object.
type listedStep func(t *testing.T, w *Watcher, s *Store, post func([]byte))

func filed(p change.Pending) listedStep {
	return func(_ *testing.T, _ *Watcher, s *Store, _ func([]byte)) { s.AddPending(p) }
}

func posted(b func(t *testing.T) []byte) listedStep {
	return func(t *testing.T, _ *Watcher, _ *Store, post func([]byte)) { post(b(t)) }
}

func listedAs(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) listedStep {
	return func(_ *testing.T, w *Watcher, _ *Store, _ func([]byte)) { w.handlers(gvr).OnAdd(obj, true) }
}

// TestWatcher_initialList_pairsCreateClaims: an object of an informer's
// initial list is handed on as a live CREATE with the author of the
// webhook's create claim exactly when the live path would pair that claim
// with it; otherwise nothing is handed on (the reconcile writes it) and the
// watch is done with it at once.
func TestWatcher_initialList_pairsCreateClaims(t *testing.T) {
	alice, bob := user("alice"), user("bob")
	cm := func(value string) *unstructured.Unstructured { return configMap("u1", "", value) }
	listed := listedAs(configMaps, configMap("u1", "7", "a"))
	tests := []struct {
		name  string
		steps func(t *testing.T) []listedStep
		// want is the author handed on ("" for nothing).
		want string
		// remaining claims in the store afterwards.
		remaining int
	}{
		{
			name:  "claimed and matching is the claim's",
			steps: func(t *testing.T) []listedStep { return []listedStep{filed(create(t, alice, cm("a"))), listed} },
			want:  "alice",
		},
		{
			name: "claimed by namespace and name (no uid) and matching",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{filed(create(t, alice, configMap("", "", "a"))), listed}
			},
			want: "alice",
		},
		{
			name: "claim of other content (an older write) is not paired",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{filed(create(t, alice, cm("older"))), listed}
			},
		},
		{
			name:  "no claim is the reconcile's",
			steps: func(t *testing.T) []listedStep { return []listedStep{listed} },
		},
		{
			name: "a dry-run request claims nothing",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{posted(func(t *testing.T) []byte { return review(t, alice, configMaps, configMap("", "", "a"), true) }), listed}
			},
		},
		{
			name: "a request through the webhook claims it",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{posted(func(t *testing.T) []byte { return review(t, alice, configMaps, configMap("", "", "a"), false) }), listed}
			},
			want: "alice",
		},
		{
			name: "several claims: the one with the listed content wins",
			steps: func(t *testing.T) []listedStep {
				// bob's create was rejected (or conflicted); alice's
				// stored the listed content.
				return []listedStep{filed(create(t, bob, cm("b"))), filed(create(t, alice, cm("a"))), filed(create(t, bob, configMap("", "", "c"))), listed}
			},
			want: "alice",
		},
		{
			name: "matching claims of two users are not paired",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{filed(create(t, alice, cm("a"))), filed(create(t, bob, cm("a"))), listed}
			},
		},
		{
			name: "a lost claim for the creation is not paired",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{filed(create(t, alice, cm("a"))), func(_ *testing.T, _ *Watcher, s *Store, _ func([]byte)) {
					s.AddTaint(change.Taint{Operation: v1alpha1.OperationCreate, Resource: configMaps, Namespace: "team", Name: "settings", UID: "u1"})
				}, listed}
			},
		},
		{
			name: "a claim of a later write of the object is not paired",
			steps: func(t *testing.T) []listedStep {
				// The listed state may be bob's update, which restored
				// alice's content.
				return []listedStep{filed(create(t, alice, cm("a"))), filed(update(t, bob, "5", configMap("u1", "5", "a"))), listed}
			},
			remaining: 1,
		},
		{
			name: "an object being deleted is not paired",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{filed(create(t, alice, cm("a"))), listedAs(configMaps, deleting(configMap("u1", "7", "a"), "example.com/hold"))}
			},
		},
		{
			name: "an object no rule selects settles its claim",
			steps: func(t *testing.T) []listedStep {
				obj := withLabel(configMap("u1", "7", "a"), "app", "ignored")
				p := create(t, alice, withLabel(cm("a"), "app", "ignored"))
				return []listedStep{filed(p), listedAs(configMaps, obj)}
			},
		},
		{
			name: "a claim is consumed once: a second informer's list hands on nothing",
			steps: func(t *testing.T) []listedStep {
				return []listedStep{filed(create(t, alice, cm("a"))), listed, listed}
			},
			want: "alice",
		},
		{
			name: "a Secret pairs by its values",
			steps: func(t *testing.T) []listedStep {
				p := create(t, alice, secret("u1", "", "c2VjcmV0"))
				p.Resource = secrets
				return []listedStep{filed(p), listedAs(secrets, secret("u1", "7", "c2VjcmV0"))}
			},
			want: "alice",
		},
		{
			name: "a Secret with other values is not paired",
			steps: func(t *testing.T) []listedStep {
				p := create(t, alice, secret("u1", "", "b2xk"))
				p.Resource = secrets
				return []listedStep{filed(p), listedAs(secrets, secret("u1", "7", "c2VjcmV0"))}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := NewStore(StoreOptions{})
			// A grace of an hour: nothing waits to be decided here.
			w, _ := newTestWatcher(t, time.Hour, store)
			w.opts.Index.Upsert(&rules.Rule{
				Key:       rules.Key{Kind: rules.KindClusterWatchRule, Name: "secrets"},
				Resources: []rules.Resource{{GVR: secrets, Namespaced: true}},
			})
			sink := &handedAtRecord{w: w}
			rec := &recordingSink{}
			w.opts.Sink = teeSink{sink, rec}
			post := webhook(t, w.opts.Index, store)
			for _, s := range tc.steps(t) {
				s(t, w, store, post)
			}
			got := rec.snapshot()
			var authors []string
			for _, c := range got {
				if c.Operation != v1alpha1.OperationCreate {
					t.Errorf("handed on %s, want CREATE", c.Operation)
				}
				authors = append(authors, c.User.Username)
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if fmt.Sprint(authors) != fmt.Sprint(want) {
				t.Fatalf("handed on by %v, want %v", authors, want)
			}
			// The watch is done with the listed write, and reported it
			// done only after the sink had it.
			if rv, ok := w.Handed("u1"); !ok || rv != "7" {
				t.Errorf("Handed = %q, %v; want 7, true", rv, ok)
			}
			sink.mu.Lock()
			for _, rv := range sink.at {
				if rv != "" {
					t.Errorf("Handed said %q while the sink had the change, want nothing", rv)
				}
			}
			sink.mu.Unlock()
			if n := store.Len(); n != tc.remaining {
				t.Errorf("claims left = %d, want %d", n, tc.remaining)
			}
			if n := w.waitingLen(); n != 0 {
				t.Errorf("events waiting = %d, want 0", n)
			}
		})
	}
}

// TestWatcher_initialList_waitsForAQueuedClaim: a create claim still in the
// webhook's queue when the informer lists the object holds it (the
// reconcile leaves it alone) until the claim is filed, or until the grace
// ends, when it is the reconcile's.
func TestWatcher_initialList_waitsForAQueuedClaim(t *testing.T) {
	alice := user("alice")
	key := change.Taint{Operation: v1alpha1.OperationCreate, Resource: configMaps, Namespace: "team", Name: "settings", UID: "u1"}
	for _, tc := range []struct {
		name string
		// arrives: the claim is filed before the grace ends.
		arrives bool
		want    string
	}{
		{name: "claim filed within the grace", arrives: true, want: "[alice]"},
		{name: "claim never filed", want: "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := NewStore(StoreOptions{})
			w, sink := newTestWatcher(t, time.Hour, store)
			store.ClaimQueued(key)
			w.handlers(configMaps).OnAdd(configMap("u1", "7", "a"), true)
			if _, ok := w.Handed("u1"); ok {
				t.Fatal("the watch is done with a listed object whose claim is queued")
			}
			final := true
			if tc.arrives {
				store.AddPending(create(t, alice, configMap("u1", "", "a")))
				store.ClaimDone(key)
				final = false
			}
			w.drain("u1", final)
			var authors []string
			for _, c := range sink.snapshot() {
				authors = append(authors, c.User.Username)
			}
			if fmt.Sprint(authors) != tc.want {
				t.Fatalf("handed on by %v, want %s", authors, tc.want)
			}
			if rv, ok := w.Handed("u1"); !ok || rv != "7" {
				t.Errorf("Handed = %q, %v; want 7, true", rv, ok)
			}
		})
	}
}

// BenchmarkWatcher_initialList measures an initial list of 20,000 objects
// with 100 create claims filed: the pairing is a map lookup per object.
func BenchmarkWatcher_initialList(b *testing.B) {
	objs := make([]*unstructured.Unstructured, 20000)
	for i := range objs {
		objs[i] = configMap(fmt.Sprintf("u%d", i), "7", "a")
		objs[i].SetName(fmt.Sprintf("cm-%d", i))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		store := NewStore(StoreOptions{})
		for j := 0; j < 100; j++ {
			fp, err := transform.Fingerprint(objs[j*200])
			if err != nil {
				b.Fatal(err)
			}
			store.AddPending(change.Pending{User: user("alice"), Operation: v1alpha1.OperationCreate, Resource: configMaps,
				Namespace: "team", Name: objs[j*200].GetName(), UID: objs[j*200].GetUID(), Fingerprint: fp})
		}
		sink := &recordingSink{}
		w := newWatcher(Options{Index: benchIndex(), Store: store, Sink: sink, Grace: time.Hour, MaxWaiting: DefaultMaxWaiting})
		h := w.handlers(configMaps)
		b.StartTimer()
		for _, o := range objs {
			h.OnAdd(o, true)
		}
		b.StopTimer()
		if n := len(sink.snapshot()); n != 100 {
			b.Fatalf("handed on %d, want 100", n)
		}
	}
}

func benchIndex() *rules.Index {
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key:       rules.Key{Kind: rules.KindClusterWatchRule, Name: "all"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}},
	})
	return ix
}

// teeSink hands each change to every sink.
type teeSink []change.Sink

func (s teeSink) Record(ctx context.Context, c change.Change) {
	for _, x := range s {
		x.Record(ctx, c)
	}
}

// waitingLen counts the events waiting for their grace.
func (w *Watcher) waitingLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nWait
}

// webhook runs the real admission handler over store and returns a post
// that sends it a review and waits until its workers are done with it.
func webhook(t *testing.T, ix *rules.Index, store *Store) func([]byte) {
	t.Helper()
	h, err := admission.NewHandler(admission.Options{Index: ix, Recorder: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func(body []byte) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, admission.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)
		if rw.Code != http.StatusOK {
			t.Fatalf("webhook answered %d: %s", rw.Code, rw.Body.String())
		}
		// A dry run is never queued; anything else is, until a worker
		// files (or drops) its claim.
		eventually(t, "the webhook's queue to drain", func() bool {
			store.mu.Lock()
			defer store.mu.Unlock()
			return len(store.inFlight) == 0
		})
	}
}

// TestWatcher_observe_waitsForANewNamespace: a change in a namespace the
// operator's cache has not heard of yet (one apply created both) is not
// judged no rule's at once: it waits its grace with its claims kept, and
// is selected again then.
func TestWatcher_observe_waitsForANewNamespace(t *testing.T) {
	alice := user("alice")
	for _, tc := range []struct {
		name string
		// known: the namespace's labels when the event arrives; nil
		// when the cache has not heard of it.
		known labels.Set
		// later: its labels when the grace ends; nil: still unknown.
		later labels.Set
		want  string
		// waits: the event waited for the grace.
		waits bool
	}{
		{name: "the namespace reaches the cache within the grace", later: labels.Set{"team": "x"}, want: "[alice]", waits: true},
		{name: "the namespace never reaches the cache", want: "[]", waits: true},
		{name: "the namespace reaches the cache unselected", later: labels.Set{"team": "y"}, want: "[]", waits: true},
		{name: "a known namespace the rule does not select", known: labels.Set{"team": "y"}, want: "[]"},
		{name: "a known namespace the rule selects", known: labels.Set{"team": "x"}, want: "[alice]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := NewStore(StoreOptions{})
			w, sink := newTestWatcher(t, time.Hour, store)
			sel, err := labels.Parse("team=x")
			if err != nil {
				t.Fatal(err)
			}
			ix := rules.NewIndex()
			ix.Upsert(&rules.Rule{
				Key:             rules.Key{Kind: rules.KindClusterWatchRule, Name: "teams"},
				Resources:       []rules.Resource{{GVR: configMaps, Namespaced: true}},
				NamespaceLabels: sel,
			})
			w.opts.Index = ix
			var mu sync.Mutex
			nsLabels := tc.known
			w.opts.NamespaceLabels = func(ns string) (labels.Set, bool) {
				mu.Lock()
				defer mu.Unlock()
				return nsLabels, ns == "team" && nsLabels != nil
			}
			store.AddPending(create(t, alice, configMap("u1", "", "a")))
			w.observe(addedEvent(configMaps, configMap("u1", "7", "a")))
			if got := w.waitingLen() == 1; got != tc.waits {
				t.Fatalf("waiting = %v, want %v", got, tc.waits)
			}
			if tc.waits {
				if _, ok := w.Handed("u1"); ok {
					t.Fatal("the watch is done with a change that waits for its namespace")
				}
				mu.Lock()
				nsLabels = tc.later
				mu.Unlock()
				w.drain("u1", true)
			}
			var authors []string
			for _, c := range sink.snapshot() {
				authors = append(authors, c.User.Username)
			}
			if fmt.Sprint(authors) != tc.want {
				t.Fatalf("handed on by %v, want %s", authors, tc.want)
			}
			if rv, ok := w.Handed("u1"); !ok || rv != "7" {
				t.Errorf("Handed = %q, %v; want 7, true", rv, ok)
			}
			if n := store.Len(); n != 0 {
				t.Errorf("claims left = %d, want 0", n)
			}
			if n := w.waitingLen(); n != 0 {
				t.Errorf("events waiting = %d, want 0", n)
			}
		})
	}
}
