package batch

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// switchableTargets serves a GitTarget whose URL a test may change.
type switchableTargets struct {
	mu  sync.Mutex
	url string
}

func (s *switchableTargets) set(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.url = url
}

func (s *switchableTargets) Target(_ context.Context, key types.NamespacedName) (*v1alpha1.GitTarget, gitstore.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: v1alpha1.GitTargetSpec{
			URL: s.url, Branch: "main", BasePath: "cluster",
			Commit:   v1alpha1.CommitSpec{CommitterName: "gitops-reverser", CommitterEmail: "bot@test", AuthorEmailDomain: "users.test"},
			Sync:     v1alpha1.SyncSpec{PushInterval: metav1.Duration{Duration: 10 * time.Millisecond}, PushAfterCommits: 1},
			Batching: v1alpha1.BatchingSpec{IdleTimeout: metav1.Duration{Duration: 10 * time.Millisecond}, MaxChanges: 10},
		},
	}, gitstore.Credentials{}, nil
}

func gitCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestBatcher_Start_keepsChangesWhileTheRemoteIsDown proves that a change
// whose target cannot be opened (the remote is down) waits and is
// committed once the remote answers: nothing is lost.
func TestBatcher_Start_keepsChangesWhileTheRemoteIsDown(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	targets := &switchableTargets{url: filepath.Join(dir, "not-there-yet.git")}
	b := New(Options{Targets: targets, WorkDir: filepath.Join(dir, "work"), Tick: 10 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": "shop", "uid": "u1", "resourceVersion": "7"},
		"data":     map[string]any{"color": "blue"},
	}}
	rule := &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"},
		Target: types.NamespacedName{Namespace: "shop", Name: "history"}}
	b.Record(ctx, change.Change{
		Operation: v1alpha1.OperationCreate, Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Namespace: "shop", Name: "settings", UID: "u1", Object: obj, User: change.User{Username: "alice"}, Rules: []*rules.Rule{rule},
	})

	// The change is committed locally and waits for its remote, and the
	// target says so...
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := b.Status(key); st.Unpushed == 1 && st.Reason == v1alpha1.ReasonPushFailed {
			break
		}
		if time.Since(start) > 30*time.Second {
			st, _ := b.Status(key)
			t.Fatalf("the change never waited for its remote: %+v", st)
		}
	}
	// ...whose remote appears only now.
	gitCLI(t, "init", "-q", "--bare", "-b", "main", remote)
	targets.set(remote)

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("git", "--git-dir", remote, "log", "--format=%an", "main").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) == "alice" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiting change never reached the remote: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	content := gitCLI(t, "--git-dir", remote, "show", "main:cluster/shop/core/configmaps/settings.yaml")
	if !strings.Contains(content, "color: blue") {
		t.Fatalf("committed file = %q, want the ConfigMap", content)
	}
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := b.Status(key); st.Unpushed == 0 && st.Backlog() == 0 && st.Reason == "" {
			break
		}
		if time.Since(start) > 30*time.Second {
			st, _ := b.Status(key)
			t.Fatalf("the target still shows a backlog: %+v", st)
		}
	}
}

// TestBatcher_stage_leavesChangesBeforeTheRuleToItsSnapshot: a change the
// watch saw before the rule entered the index is not the rule's; one seen
// after it is committed.
func TestBatcher_stage_leavesChangesBeforeTheRuleToItsSnapshot(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	gitCLI(t, "init", "-q", "--bare", "-b", "main", remote)
	b := New(Options{Targets: &switchableTargets{url: remote}, WorkDir: filepath.Join(dir, "work"),
		Tick: 10 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	active := time.Now()
	rule := &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"},
		Target: types.NamespacedName{Namespace: "shop", Name: "history"}, Active: active}
	record := func(name string, observed time.Time) {
		b.Record(ctx, change.Change{
			Operation: v1alpha1.OperationCreate, Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			Namespace: "shop", Name: name, Object: &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": name, "namespace": "shop"},
				"data":     map[string]any{"v": name},
			}},
			User: change.User{Username: "alice"}, Rules: []*rules.Rule{rule}, Observed: observed,
		})
	}
	record("before", active.Add(-time.Second))
	record("after", active.Add(time.Second))

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("git", "--git-dir", remote, "ls-tree", "-r", "--name-only", "main").CombinedOutput()
		if err == nil && strings.Contains(string(out), "after.yaml") {
			if strings.Contains(string(out), "before.yaml") {
				t.Fatalf("a change seen before the rule was committed:\n%s", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change seen after the rule never reached the remote: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBatcher_ReconcileResources_asksTargetsOfTheResource: a gap in the
// watch of configmaps asks for a reconcile of the targets that record
// configmaps, not of the others.
func TestBatcher_ReconcileResources_asksTargetsOfTheResource(t *testing.T) {
	ix := rules.NewIndex()
	cms := types.NamespacedName{Namespace: "a", Name: "cms"}
	secrets := types.NamespacedName{Namespace: "b", Name: "secrets"}
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "a", Name: "r"}, Namespace: "a", Target: cms,
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespaced: true}}})
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "b", Name: "r"}, Namespace: "b", Target: secrets,
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, Namespaced: true}}})
	b := New(Options{Index: ix})
	b.ReconcileResources([]schema.GroupResource{{Resource: "configmaps"}})
	b.askedMu.Lock()
	defer b.askedMu.Unlock()
	if !b.asked[cms] || b.asked[secrets] || len(b.asked) != 1 {
		t.Fatalf("asked = %v, want only %s", b.asked, cms)
	}
}
