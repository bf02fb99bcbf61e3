package batch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/reconcile"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// mapLister serves fixed ConfigMaps and notes whether the watch had synced
// when it was first asked.
type mapLister struct {
	mu             sync.Mutex
	objs           []unstructured.Unstructured
	synced         *atomic.Bool
	listedUnsynced bool
	lists          int
	// beforeList, when set, runs at the start of the nth List (1-based),
	// on the caller's goroutine (the target's worker for a reconcile).
	beforeList func(n int)
}

func (l *mapLister) List(_ context.Context, gvr schema.GroupVersionResource, ns string) (reconcile.Listing, error) {
	l.mu.Lock()
	l.lists++
	n, hook := l.lists, l.beforeList
	l.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.synced.Load() {
		l.listedUnsynced = true
	}
	out := reconcile.Listing{Kind: "ConfigMap"}
	for _, o := range l.objs {
		if gvr.Resource == "configmaps" && (ns == "" || o.GetNamespace() == ns) {
			out.Items = append(out.Items, *o.DeepCopy())
		}
	}
	return out, nil
}

func (l *mapLister) Get(_ context.Context, _ schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.objs {
		if o.GetNamespace() == ns && o.GetName() == name {
			return o.DeepCopy(), nil
		}
	}
	return nil, nil
}

func configMap(name, value string) unstructured.Unstructured {
	return unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "shop", "uid": "uid-" + name, "resourceVersion": "1"},
		"data":     map[string]any{"v": value},
	}}
}

// pushAsHuman commits files to the remote's main branch with the git CLI.
func pushAsHuman(t *testing.T, remote string, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	gitCLI(t, "clone", "-q", remote, dir)
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCLI(t, "-C", dir, "add", "-A")
	gitCLI(t, "-C", dir, "-c", "user.name=Human", "-c", "user.email=human@test", "commit", "-q", "-m", "by hand")
	gitCLI(t, "-C", dir, "push", "-q", "origin", "HEAD:main")
}

// TestBatcher_Start_reconcilesInOneCommit: at start, after the watch has
// synced, the target's files become what its rule selects in one commit by
// the operator; files no rule manages stay.
func TestBatcher_Start_reconcilesInOneCommit(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	gitCLI(t, "init", "-q", "--bare", "-b", "main", remote)
	const (
		readme  = "cluster/README.md"
		service = "cluster/shop/core/services/web.yaml"
		stale   = "cluster/shop/core/configmaps/a.yaml"
		gone    = "cluster/shop/core/configmaps/gone.yaml"
		added   = "cluster/shop/core/configmaps/b.yaml"
	)
	pushAsHuman(t, remote, map[string]string{
		readme:  "# notes\n",
		service: "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n",
		stale:   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\ndata:\n  v: old\n",
		gone:    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gone\n  namespace: shop\n",
	})

	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"}, Namespace: "shop",
		Target:    types.NamespacedName{Namespace: "shop", Name: "history"},
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespaced: true}}})
	synced := &atomic.Bool{}
	var asked atomic.Int32
	lister := &mapLister{objs: []unstructured.Unstructured{configMap("a", "new"), configMap("b", "new")}, synced: synced}
	b := New(Options{Targets: &switchableTargets{url: remote}, WorkDir: filepath.Join(dir, "work"),
		Tick: 10 * time.Millisecond, RetryInterval: 20 * time.Millisecond, Index: ix, Lister: lister,
		WatchSynced: func() bool {
			// The watch syncs after a few questions.
			if asked.Add(1) > 3 {
				synced.Store(true)
			}
			return synced.Load()
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	var log string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("git", "--git-dir", remote, "log", "--format=%an%n%B%n--", "main").CombinedOutput()
		if log = string(out); strings.Contains(log, "RECONCILE") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconcile reached the remote:\n%s", log)
		}
	}
	if n := strings.Count(log, "--\n"); n != 2 {
		t.Fatalf("the remote has %d commits, want the human's and one reconcile:\n%s", n, log)
	}
	for _, want := range []string{"gitops-reverser\nReconcile shop/history: added=1 updated=1 removed=1",
		"Reverser-Operation: RECONCILE", "Reverser-Reconcile: added=1 updated=1 removed=1"} {
		if !strings.Contains(log, want) {
			t.Fatalf("the log lacks %q:\n%s", want, log)
		}
	}
	files := gitCLI(t, "--git-dir", remote, "ls-tree", "-r", "--name-only", "main")
	if got, want := strings.Fields(files), []string{readme, stale, added, service}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files = %v, want %v", got, want)
	}
	if c := gitCLI(t, "--git-dir", remote, "show", "main:"+stale); !strings.Contains(c, "v: new") {
		t.Fatalf("%s = %q, want the cluster's content", stale, c)
	}
	lister.mu.Lock()
	defer lister.mu.Unlock()
	if lister.listedUnsynced {
		t.Fatal("the reconcile listed before the watch had synced")
	}
}

// TestBatcher_young_onlyAfterStart: an object written before the operator
// started is the reconcile's at once; one written since, within the
// margin, may still be on its way with its author.
func TestBatcher_young_onlyAfterStart(t *testing.T) {
	start := time.Date(2026, 11, 30, 12, 0, 0, 500_000_000, time.UTC)
	b := &Batcher{started: start}
	for _, tc := range []struct {
		name    string
		written time.Time
		now     time.Time
		want    bool
	}{
		{name: "written while the operator was down", written: start.Add(-time.Second).Truncate(time.Second), now: start.Add(time.Second), want: false},
		{name: "written in the second of the start (managedFields have second precision)", written: start.Truncate(time.Second), now: start.Add(time.Second), want: true},
		{name: "written since, within the margin", written: start.Add(time.Second), now: start.Add(2 * time.Second), want: true},
		{name: "written since, beyond the margin", written: start.Add(time.Second), now: start.Add(time.Second + youngMargin), want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := configMap("a", "1")
			obj.SetCreationTimestamp(metaTime(tc.written))
			if got := b.young(&obj, tc.now); got != tc.want {
				t.Fatalf("young = %v, want %v", got, tc.want)
			}
		})
	}
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t) }

// TestBatcher_reconcile_defersRemovalAfterStart: once a target has been
// reconciled in this process, a file whose object disappeared is removed
// only after the margin (its delete may be on its way with its author), by
// a recheck that finds the object still gone.
func TestBatcher_reconcile_defersRemovalAfterStart(t *testing.T) {
	margin := youngMargin
	youngMargin = 300 * time.Millisecond
	t.Cleanup(func() { youngMargin = margin })
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	gitCLI(t, "init", "-q", "--bare", "-b", "main", remote)
	rule := func(gen int64) *rules.Rule {
		return &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"}, Namespace: "shop", Generation: gen,
			Target:    types.NamespacedName{Namespace: "shop", Name: "history"},
			Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespaced: true}}}
	}
	ix := rules.NewIndex()
	ix.Upsert(rule(1))
	synced := &atomic.Bool{}
	synced.Store(true)
	lister := &mapLister{objs: []unstructured.Unstructured{configMap("a", "1"), configMap("b", "1")}, synced: synced}
	b := New(Options{Targets: &switchableTargets{url: remote}, WorkDir: filepath.Join(dir, "work"),
		Tick: 10 * time.Millisecond, RetryInterval: 20 * time.Millisecond, Index: ix, Lister: lister})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitLog := func(want string) string {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			out, _ := exec.Command("git", "--git-dir", remote, "log", "--format=%B%n--", "main").CombinedOutput()
			if strings.Contains(string(out), want) {
				return string(out)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the log never showed %q:\n%s", want, out)
			}
		}
	}
	waitLog("Reverser-Reconcile: added=2 updated=0 removed=0")

	lister.mu.Lock()
	lister.objs = lister.objs[:1]
	lister.mu.Unlock()
	ix.Upsert(rule(2)) // a new generation: reconcile again
	log := waitLog("Reverser-Reconcile: added=0 updated=0 removed=1")
	for _, c := range strings.Split(log, "--\n") {
		if strings.Contains(c, "removed=1") && !strings.Contains(c, "after a recheck") {
			t.Fatalf("the removal was not left for a recheck:\n%s", c)
		}
	}
	files := gitCLI(t, "--git-dir", remote, "ls-tree", "-r", "--name-only", "main")
	if strings.Contains(files, "b.yaml") || !strings.Contains(files, "a.yaml") {
		t.Fatalf("files = %q, want a.yaml only", files)
	}
}

// fakeWatch is the watch's progress for the reconcile: the
// resourceVersion of each object's last write handed on.
type fakeWatch struct {
	mu     sync.Mutex
	handed map[types.UID]string
}

func (f *fakeWatch) Handed(uid types.UID) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rv, ok := f.handed[uid]
	return rv, ok
}

func (f *fakeWatch) hand(uid types.UID, rv string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handed[uid] = rv
}

// TestBatcher_reconcile_leavesAWriteOnItsWayToItsAuthor replays the race
// of a reconcile (a rule's new settings) with bob's kubectl scale: the
// reconcile lists the object at bob's resourceVersion while bob's change
// is still on its way, either not handed on by the watch yet or waiting in
// the target's queue behind the reconcile. The reconcile must leave the
// file to bob's change, whose commit is then bob's. The object looks old
// by its managedFields (a write through the scale subresource leaves no
// time there), so only the watch's progress tells.
func TestBatcher_reconcile_leavesAWriteOnItsWayToItsAuthor(t *testing.T) {
	for _, tc := range []struct {
		name string
		// queued delivers bob's change while the reconcile lists (so it
		// waits in the queue behind it); otherwise it is delivered once
		// the reconcile is over.
		queued bool
	}{
		{name: "the watch has not handed the write on yet"},
		{name: "the write waits in the queue behind the reconcile", queued: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			remote := filepath.Join(dir, "remote.git")
			gitCLI(t, "init", "-q", "--bare", "-b", "main", remote)
			rule := func(gen int64) *rules.Rule {
				return &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"}, Namespace: "shop", Generation: gen,
					Target:    types.NamespacedName{Namespace: "shop", Name: "history"},
					Resources: []rules.Resource{{GVR: configmaps, Namespaced: true}}}
			}
			ix := rules.NewIndex()
			ix.Upsert(rule(1))
			long := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
			cm := func(rv, value string) unstructured.Unstructured {
				obj := configMap("a", value)
				obj.SetResourceVersion(rv)
				obj.SetCreationTimestamp(long)
				obj.SetManagedFields([]metav1.ManagedFieldsEntry{
					{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, Time: &long},
					{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "scale"}, // no time
				})
				return obj
			}
			synced := &atomic.Bool{}
			synced.Store(true)
			lister := &mapLister{objs: []unstructured.Unstructured{cm("1", "1")}, synced: synced}
			watch := &fakeWatch{handed: map[types.UID]string{"uid-a": "1"}}
			b := New(Options{Targets: &switchableTargets{url: remote}, WorkDir: filepath.Join(dir, "work"),
				Tick: 10 * time.Millisecond, RetryInterval: 20 * time.Millisecond, Index: ix, Lister: lister,
				WatchHanded: watch.Handed})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Start(ctx) }()
			t.Cleanup(func() {
				cancel()
				<-done
			})
			eventually(t, "the first reconcile reaches the remote", func() bool {
				return strings.Contains(remoteLog(remote, "%B"), "Reverser-Reconcile: added=1 updated=0 removed=0")
			})

			// bob scales: the cluster holds resourceVersion 2.
			bobs := cm("2", "2")
			r2 := rule(2)
			record := func() {
				b.Record(ctx, change.Change{Operation: v1alpha1.OperationUpdate, Resource: configmaps, Namespace: "shop",
					Name: "a", UID: "uid-a", ResourceVersion: "2", Object: bobs.DeepCopy(),
					User: change.User{Username: "bob"}, Rules: []*rules.Rule{r2}})
				watch.hand("uid-a", "2") // after Record returned, as the watcher does
			}
			lister.mu.Lock()
			lister.objs = []unstructured.Unstructured{bobs}
			if tc.queued {
				lister.beforeList = func(n int) {
					if n == 2 {
						record()
					}
				}
			}
			lister.mu.Unlock()
			ix.Upsert(r2) // new settings: a reconcile
			if !tc.queued {
				eventually(t, "the reconcile lists", func() bool {
					lister.mu.Lock()
					defer lister.mu.Unlock()
					return lister.lists >= 2
				})
				// A job queued now runs after the reconcile, which is
				// listing: bob's change comes after it.
				key := types.NamespacedName{Namespace: "shop", Name: "history"}
				if err := b.onTarget(ctx, key, func(*target) error { return nil }); err != nil {
					t.Fatal(err)
				}
				record()
			}

			eventually(t, "bob's change reaches the remote", func() bool {
				return strings.Contains(remoteLog(remote, "%an"), "bob")
			})
			if c, _ := remoteFile(remote, cmPath+"a.yaml"); !strings.Contains(c, "v: \"2\"") {
				t.Fatalf("a.yaml = %q, want bob's value", c)
			}
			authors := gitCLI(t, "--git-dir", remote, "log", "--format=%an", "main", "--", cmPath+"a.yaml")
			if got := strings.Fields(authors); len(got) == 0 || got[0] != "bob" {
				t.Fatalf("authors of a.yaml, newest first = %v, want bob's change last:\n%s", got, remoteLog(remote, "%an%n%B--"))
			}
		})
	}
}

func TestRetryAfter_doublesUpToTheInterval(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, 5 * time.Second}, {2, 10 * time.Second}, {4, 40 * time.Second}, {20, 10 * time.Minute}} {
		if got := retryAfter(5*time.Second, tc.failures, 10*time.Minute); got != tc.want {
			t.Errorf("retryAfter(5s, %d, 10m) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}
