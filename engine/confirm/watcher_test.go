package confirm

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// step is one thing that happens: a claim reaches the store, or the watch
// delivers an event.
type step struct {
	claim *change.Pending
	event func() *event
	taint *change.Taint
	seen  *[2]string // uid, resourceVersion in the watch's initial list
	// queued and done: a request for the key enters and leaves the
	// webhook's queue.
	queued, done *change.Taint
}

func claim(p change.Pending) step  { return step{claim: &p} }
func lost(t change.Taint) step     { return step{taint: &t} }
func seen(uid, rv string) step     { return step{seen: &[2]string{uid, rv}} }
func queued(k change.Taint) step   { return step{queued: &k} }
func done(k change.Taint) step     { return step{done: &k} }
func observe(f func() *event) step { return step{event: f} }
func claims(ps ...change.Pending) []step {
	out := make([]step, 0, len(ps))
	for _, p := range ps {
		out = append(out, claim(p))
	}
	return out
}

// leftSuffix marks a DELETE handed on because the object left the
// selection.
const leftSuffix = "/left"

// handedOn is what a user sees of a change: operation and author.
type handedOn struct {
	op   v1alpha1.Operation
	user string
}

func TestWatcher_observe_pairing(t *testing.T) {
	alice, bob, carol, dave := user("alice"), user("bob"), user("carol"), user("dave")
	racers := []change.User{alice, bob, carol, dave}

	tests := []struct {
		name      string
		opts      StoreOptions
		steps     func(t *testing.T) []step
		want      []handedOn
		remaining int // claims left in the store afterwards
	}{
		{
			name: "single writer",
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, alice, "1", configMap("u1", "1", "a"))),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "1", "old"), configMap("u1", "2", "a"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, "alice"}},
		},
		{
			name: "eight racing writes by four users, one persisted",
			steps: func(t *testing.T) []step {
				var s []step
				for i := 0; i < 8; i++ {
					s = append(s, claim(update(t, racers[i%4], "7", configMap("u1", "7", fmt.Sprintf("v%d", i)))))
				}
				return append(s, observe(func() *event {
					return modifiedEvent(configMaps, configMap("u1", "7", "old"), configMap("u1", "8", "v6"))
				}))
			},
			want: []handedOn{{v1alpha1.OperationUpdate, "carol"}},
		},
		{
			name: "identical content by two users is unknown",
			steps: func(t *testing.T) []step {
				s := claims(update(t, alice, "3", configMap("u1", "3", "same")), update(t, bob, "3", configMap("u1", "3", "same")))
				return append(s, observe(func() *event {
					return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "same"))
				}))
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "forged duplicate claim is unknown",
			steps: func(t *testing.T) []step {
				// A review posted straight to the webhook claims alice's
				// write with other groups.
				s := claims(update(t, alice, "3", configMap("u1", "3", "new")), update(t, user("alice", "system:masters"), "3", configMap("u1", "3", "new")))
				return append(s, observe(func() *event {
					return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
				}))
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "claims from another resourceVersion do not count",
			steps: func(t *testing.T) []step {
				s := claims(update(t, alice, "2", configMap("u1", "2", "new")))
				return append(s, observe(func() *event {
					return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
				}))
			},
			want:      []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
			remaining: 1,
		},
		{
			name: "no claim is unknown after the grace",
			steps: func(t *testing.T) []step {
				return []step{observe(func() *event {
					return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
				})}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "create by uid",
			steps: func(t *testing.T) []step {
				return []step{
					claim(create(t, alice, configMap("u1", "", "a"))),
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, "alice"}},
		},
		{
			name: "create by namespace and name when the claim has no uid",
			steps: func(t *testing.T) []step {
				return []step{
					claim(create(t, bob, configMap("", "", "a"))),
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, "bob"}},
		},
		{
			name: "claim arriving after the event, within the grace",
			steps: func(t *testing.T) []step {
				return []step{
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
					claim(create(t, alice, configMap("u1", "", "a"))),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, "alice"}},
		},
		{
			name: "an object's changes stay in order behind a waiting one",
			steps: func(t *testing.T) []step {
				return []step{
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
					claim(update(t, bob, "1", configMap("u1", "1", "b"))),
					observe(func() *event { return modifiedEvent(configMaps, configMap("u1", "1", "a"), configMap("u1", "2", "b")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, change.UnknownUsername}, {v1alpha1.OperationUpdate, "bob"}},
		},
		{
			name: "scale picks the claim with the persisted replicas",
			steps: func(t *testing.T) []step {
				s := claims(scale(alice, "d1", "5", 3), scale(bob, "d1", "5", 7))
				return append(s, observe(func() *event {
					return modifiedEvent(deployments, deployment("d1", "5", 1), deployment("d1", "6", 3))
				}))
			},
			want: []handedOn{{v1alpha1.OperationUpdate, "alice"}},
		},
		{
			name: "delete with a finalizer is the deleter's",
			steps: func(t *testing.T) []step {
				return []step{
					claim(deletion(alice, "u1", "5")),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "5", "a"), deleting(configMap("u1", "6", "a"), "example.com/hold"))
					}),
					// A controller removes the finalizer.
					claim(update(t, bob, "6", deleting(configMap("u1", "6", "a")))),
					observe(func() *event { return deletedEvent(configMaps, deleting(configMap("u1", "7", "a"))) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete, "alice"}},
		},
		{
			name: "plain delete",
			steps: func(t *testing.T) []step {
				return []step{
					seen("u1", "5"),
					claim(deletion(dave, "u1", "5")),
					// The DELETED event carries the deletion's own
					// resourceVersion.
					observe(func() *event { return deletedEvent(configMaps, configMap("u1", "6", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete, "dave"}},
		},
		{
			name: "delete after an update starts from the update's version",
			steps: func(t *testing.T) []step {
				return []step{
					seen("u1", "5"),
					claim(update(t, alice, "5", configMap("u1", "5", "b"))),
					observe(func() *event { return modifiedEvent(configMaps, configMap("u1", "5", "a"), configMap("u1", "6", "b")) }),
					claim(deletion(dave, "u1", "6")),
					observe(func() *event { return deletedEvent(configMaps, configMap("u1", "7", "b")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, "alice"}, {v1alpha1.OperationDelete, "dave"}},
		},
		{
			name: "a delete claim from an older version never names the deleter",
			steps: func(t *testing.T) []step {
				return []step{
					seen("u1", "5"),
					// A delete that conflicted, was denied, or was forged.
					claim(deletion(alice, "u1", "3")),
					observe(func() *event { return deletedEvent(configMaps, configMap("u1", "6", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete, change.UnknownUsername}},
		},
		{
			name: "a denied and a persisted delete from one version are unknown",
			steps: func(t *testing.T) []step {
				return []step{
					seen("u1", "5"),
					claim(deletion(alice, "u1", "5")),
					claim(deletion(dave, "u1", "5")),
					observe(func() *event { return deletedEvent(configMaps, configMap("u1", "6", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete, change.UnknownUsername}},
		},
		{
			name: "a delete of an object the watch never saw is unknown",
			steps: func(t *testing.T) []step {
				return []step{
					claim(deletion(dave, "u1", "5")),
					observe(func() *event { return deletedEvent(configMaps, configMap("u1", "6", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete, change.UnknownUsername}},
		},
		{
			name: "a forged claim whose real claim was dropped is unknown",
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, alice, "3", configMap("u1", "3", "new"))),
					lost(change.Taint{Operation: v1alpha1.OperationUpdate, Resource: configMaps, UID: "u1", OldResourceVersion: "3"}),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "a forged claim waits for the real one queued behind a flood",
			steps: func(t *testing.T) []step {
				key := change.Taint{Operation: v1alpha1.OperationUpdate, Resource: configMaps, UID: "u1", OldResourceVersion: "3"}
				return []step{
					claim(update(t, alice, "3", configMap("u1", "3", "new"))),
					queued(key), // bob's review is in the webhook's queue
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
					}),
					claim(update(t, bob, "3", configMap("u1", "3", "new"))),
					done(key),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "a claim still queued when the grace ends makes the write unknown",
			steps: func(t *testing.T) []step {
				key := change.Taint{Operation: v1alpha1.OperationUpdate, Resource: configMaps, UID: "u1", OldResourceVersion: "3"}
				return []step{
					claim(update(t, alice, "3", configMap("u1", "3", "new"))),
					queued(key),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "a queued claim that is the only one names its author",
			steps: func(t *testing.T) []step {
				key := change.Taint{Operation: v1alpha1.OperationCreate, Resource: configMaps, UID: "u1", Namespace: "team", Name: "settings"}
				return []step{
					queued(key),
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
					claim(create(t, alice, configMap("u1", "", "a"))),
					done(key),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, "alice"}},
		},
		{
			name: "a taint of another version does not matter",
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, alice, "3", configMap("u1", "3", "new"))),
					lost(change.Taint{Operation: v1alpha1.OperationUpdate, Resource: configMaps, UID: "u1", OldResourceVersion: "2"}),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, "alice"}},
		},
		{
			name: "a dropped create taints by uid",
			steps: func(t *testing.T) []step {
				return []step{
					claim(create(t, alice, configMap("u1", "", "a"))),
					lost(change.Taint{Operation: v1alpha1.OperationCreate, Resource: configMaps, UID: "u1"}),
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, change.UnknownUsername}},
		},
		{
			name: "a dropped create taints by name",
			steps: func(t *testing.T) []step {
				return []step{
					claim(create(t, alice, configMap("u1", "", "a"))),
					lost(change.Taint{Resource: configMaps, Namespace: "team", Name: "settings"}),
					observe(func() *event { return addedEvent(configMaps, configMap("u1", "1", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationCreate, change.UnknownUsername}},
		},
		{
			name: "a dropped delete taints the deletion",
			steps: func(t *testing.T) []step {
				return []step{
					seen("u1", "5"),
					claim(deletion(alice, "u1", "5")),
					lost(change.Taint{Operation: v1alpha1.OperationDelete, Resource: configMaps, UID: "u1", OldResourceVersion: "5"}),
					observe(func() *event { return deletedEvent(configMaps, configMap("u1", "6", "a")) }),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete, change.UnknownUsername}},
		},
		{
			name: "a claim evicted from a full store taints its write",
			opts: StoreOptions{MaxPending: 2},
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, bob, "3", configMap("u1", "3", "new"))),
					claim(update(t, dave, "1", configMap("u9", "1", "x"))),
					// The forged claim evicts bob's, the oldest.
					claim(update(t, alice, "3", configMap("u1", "3", "new"))),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
					}),
				}
			},
			want:      []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
			remaining: 1,
		},
		{
			name: "an evicted taint makes every decision in its TTL unknown",
			opts: StoreOptions{MaxTaints: 1},
			steps: func(t *testing.T) []step {
				return []step{
					lost(change.Taint{Operation: v1alpha1.OperationUpdate, Resource: configMaps, UID: "u1", OldResourceVersion: "3"}),
					lost(change.Taint{Operation: v1alpha1.OperationUpdate, Resource: configMaps, UID: "u9", OldResourceVersion: "1"}),
					claim(update(t, alice, "3", configMap("u1", "3", "new"))),
					observe(func() *event {
						return modifiedEvent(configMaps, configMap("u1", "3", "old"), configMap("u1", "4", "new"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, change.UnknownUsername}},
		},
		{
			name: "an object no rule selects hands on nothing and settles its claims",
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, alice, "1", withLabel(configMap("u1", "1", "b"), "app", "ignored"))),
					observe(func() *event {
						return modifiedEvent(configMaps, withLabel(configMap("u1", "1", "a"), "app", "ignored"), withLabel(configMap("u1", "2", "b"), "app", "ignored"))
					}),
				}
			},
			want: nil,
		},
		{
			name: "an update that moves the object out of the selection is a deletion by its author",
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, alice, "1", withLabel(configMap("u1", "2", "a"), "app", "ignored"))),
					observe(func() *event {
						return modifiedEvent(configMaps, withLabel(configMap("u1", "1", "a"), "app", "web"), withLabel(configMap("u1", "2", "a"), "app", "ignored"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationDelete + leftSuffix, "alice"}},
		},
		{
			name: "leaving the selection without a claim is a deletion by unknown",
			steps: func(t *testing.T) []step {
				return []step{observe(func() *event {
					return modifiedEvent(configMaps, configMap("u1", "1", "a"), withLabel(configMap("u1", "2", "a"), "app", "ignored"))
				})}
			},
			want: []handedOn{{v1alpha1.OperationDelete + leftSuffix, change.UnknownUsername}},
		},
		{
			name: "an update that moves the object into the selection is an update",
			steps: func(t *testing.T) []step {
				return []step{
					claim(update(t, bob, "1", withLabel(configMap("u1", "2", "a"), "app", "web"))),
					observe(func() *event {
						return modifiedEvent(configMaps, withLabel(configMap("u1", "1", "a"), "app", "ignored"), withLabel(configMap("u1", "2", "a"), "app", "web"))
					}),
				}
			},
			want: []handedOn{{v1alpha1.OperationUpdate, "bob"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewStore(tt.opts)
			w, sink := newTestWatcher(t, 200*time.Millisecond, store)
			for _, s := range tt.steps(t) {
				switch {
				case s.claim != nil:
					store.AddPending(*s.claim)
				case s.taint != nil:
					store.AddTaint(*s.taint)
				case s.seen != nil:
					store.noteRV(types.UID(s.seen[0]), s.seen[1])
				case s.queued != nil:
					store.ClaimQueued(*s.queued)
				case s.done != nil:
					store.ClaimDone(*s.done)
				default:
					w.observe(s.event())
				}
			}
			eventually(t, "all events decided", func() bool {
				w.mu.Lock()
				defer w.mu.Unlock()
				return w.nWait == 0
			})
			var got []handedOn
			for _, c := range sink.snapshot() {
				op := c.Operation
				if c.LeftSelection {
					op += leftSuffix
					// The file to remove is where the old state was written.
					if c.Object == nil || c.Object.GetLabels()["app"] == "ignored" {
						t.Errorf("a change leaving the selection must carry the old object, got %v", c.Object)
					}
				}
				got = append(got, handedOn{op, c.User.Username})
				if len(c.Rules) == 0 || c.Object == nil {
					t.Errorf("change %s %s/%s has no rules or no object", c.Operation, c.Namespace, c.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("handed on %v, want %v", got, tt.want)
			}
			if n := store.Len(); n != tt.remaining {
				t.Errorf("%d claims left in the store, want %d", n, tt.remaining)
			}
		})
	}
}

func TestWatcher_observe_countsAttribution(t *testing.T) {
	store := NewStore(StoreOptions{})
	w, sink := newTestWatcher(t, time.Millisecond, store)
	attributed, unattributed, unknown := counterValue(t, confirmedAttributed), counterValue(t, confirmedUnattributed), counterValue(t, unknownAuthorTotal)

	store.AddPending(update(t, user("alice"), "1", configMap("u1", "1", "a")))
	w.observe(modifiedEvent(configMaps, configMap("u1", "1", "old"), configMap("u1", "2", "a")))
	w.observe(modifiedEvent(configMaps, configMap("u2", "1", "old"), configMap("u2", "2", "a")))
	eventually(t, "two changes", func() bool { return len(sink.snapshot()) == 2 })

	if d := counterValue(t, confirmedAttributed) - attributed; d != 1 {
		t.Errorf("attributed changes counted %v, want 1", d)
	}
	if d := counterValue(t, confirmedUnattributed) - unattributed; d != 1 {
		t.Errorf("unattributed changes counted %v, want 1", d)
	}
	if d := counterValue(t, unknownAuthorTotal) - unknown; d != 1 {
		t.Errorf("unknown authors counted %v, want 1", d)
	}
}

func TestWatcher_namespaceRelabelled_cases(t *testing.T) {
	prod := labels.SelectorFromSet(labels.Set{"env": "prod"})
	web := labels.SelectorFromSet(labels.Set{"app": "web"})
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "prod"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}, NamespaceLabels: prod})
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "prod-web"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}, NamespaceLabels: prod, Labels: web})
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "everywhere"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}})

	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, &unstructured.Unstructured{}, 0, cache.Indexers{})
	inTeam := configMap("u1", "1", "a")
	elsewhere := configMap("u2", "1", "b")
	elsewhere.SetNamespace("other")
	for _, o := range []*unstructured.Unstructured{inTeam, elsewhere} {
		if err := inf.GetStore().Add(o); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		old, cur labels.Set
		want     []string // rule/name of each change handed on
	}{
		{"leaves the selector", labels.Set{"env": "prod"}, labels.Set{"env": "dev"}, []string{"ClusterWatchRule/prod/settings"}},
		{"enters the selector", labels.Set{"env": "dev"}, labels.Set{"env": "prod"}, nil},
		{"labels unchanged", labels.Set{"env": "prod"}, labels.Set{"env": "prod"}, nil},
		{"another label changes", labels.Set{"env": "prod"}, labels.Set{"env": "prod", "team": "a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{}
			w := newWatcher(Options{Index: ix, Store: NewStore(StoreOptions{}), Sink: sink})
			w.informers[informerKey{resource: configMaps.GroupResource()}] = &runningInformer{gvr: configMaps, informer: inf, cancel: func() {}}
			w.namespaceRelabelled("team", tt.old, tt.cur)
			var got []string
			for _, c := range sink.snapshot() {
				if c.Operation != v1alpha1.OperationDelete || !c.LeftSelection || !c.User.IsUnknown() || c.Namespace != "team" {
					t.Errorf("handed on %s left=%v by %s in %s, want a DELETE leaving the selection by unknown in team",
						c.Operation, c.LeftSelection, c.User.Username, c.Namespace)
				}
				for _, r := range c.Rules {
					got = append(got, r.Key.String()+"/"+c.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("handed on %v, want %v", got, tt.want)
			}
		})
	}
}

// handedAtRecord records what Handed said about each change's object while
// the sink had it: the watch must not report a write handed on before the
// sink returned.
type handedAtRecord struct {
	w  *Watcher
	mu sync.Mutex
	at []string
}

func (s *handedAtRecord) Record(_ context.Context, c change.Change) {
	rv, _ := s.w.Handed(c.UID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, rv)
}

// TestWatcher_Handed_followsWhatTheWatchIsDoneWith: the initial list and
// writes no rule selects count as done at once; a write that waits for its
// claim counts only once the sink has it; a delete forgets the object.
func TestWatcher_Handed_followsWhatTheWatchIsDoneWith(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run feeds the watcher; it returns what Handed must say of u1.
		run    func(t *testing.T, w *Watcher) (rv string, ok bool)
		atSink []string
	}{
		{name: "not seen", run: func(*testing.T, *Watcher) (string, bool) { return "", false }},
		{name: "initial list", run: func(_ *testing.T, w *Watcher) (string, bool) {
			w.handlers(configMaps).OnAdd(configMap("u1", "1", "a"), true)
			return "1", true
		}},
		{name: "a write waiting for its claim", run: func(_ *testing.T, w *Watcher) (string, bool) {
			w.handlers(configMaps).OnAdd(configMap("u1", "1", "a"), true)
			w.observe(modifiedEvent(configMaps, configMap("u1", "1", "a"), configMap("u1", "2", "b")))
			return "1", true
		}},
		{name: "a write handed on after its grace", run: func(_ *testing.T, w *Watcher) (string, bool) {
			w.handlers(configMaps).OnAdd(configMap("u1", "1", "a"), true)
			w.observe(modifiedEvent(configMaps, configMap("u1", "1", "a"), configMap("u1", "2", "b")))
			w.drain("u1", true)
			return "2", true
		}, atSink: []string{"1"}},
		{name: "a write no rule selects", run: func(_ *testing.T, w *Watcher) (string, bool) {
			ignored := func(rv, v string) *unstructured.Unstructured {
				return withLabel(configMap("u1", rv, v), "app", "ignored")
			}
			w.handlers(configMaps).OnAdd(ignored("1", "a"), true)
			w.observe(modifiedEvent(configMaps, ignored("1", "a"), ignored("2", "b")))
			return "2", true
		}},
		{name: "deleted", run: func(_ *testing.T, w *Watcher) (string, bool) {
			w.handlers(configMaps).OnAdd(configMap("u1", "1", "a"), true)
			w.observe(deletedEvent(configMaps, configMap("u1", "2", "a")))
			w.drain("u1", true)
			return "", false
		}, atSink: []string{"1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A grace of an hour: nothing is decided unless the test
			// drains it.
			w, _ := newTestWatcher(t, time.Hour, NewStore(StoreOptions{}))
			sink := &handedAtRecord{w: w}
			w.opts.Sink = sink
			wantRV, wantOK := tc.run(t, w)
			if rv, ok := w.Handed("u1"); rv != wantRV || ok != wantOK {
				t.Fatalf("Handed = %q, %v; want %q, %v", rv, ok, wantRV, wantOK)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if fmt.Sprint(sink.at) != fmt.Sprint(tc.atSink) {
				t.Fatalf("Handed while the sink had the change = %v, want %v", sink.at, tc.atSink)
			}
		})
	}
}
