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
}

func (l *mapLister) List(_ context.Context, gvr schema.GroupVersionResource, ns string) (reconcile.Listing, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
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
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
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
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
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
