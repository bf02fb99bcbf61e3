package batch

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// BenchmarkBatcher_Record measures the cost per confirmed change through a
// target's worker: Record, render (built-in sanitizer, YAML, path), author
// session, journal (fsync per batch), a commit per 100 changes (MaxChanges,
// the default) and a push every 20 commits (the default) to a local bare
// repository. The clock stops when the remote has every change. Objects:
// 200 ConfigMaps, one author.
func BenchmarkBatcher_Record(b *testing.B) {
	remote := bareRepoB(b)
	tune := func(s *v1alpha1.GitTargetSpec) {
		s.Batching.MaxChanges = 100
		s.Sync = v1alpha1.SyncSpec{PushAfterCommits: 20, PushInterval: metav1.Duration{Duration: 10 * time.Millisecond}}
	}
	batcher := New(Options{Targets: &urlTargets{urls: map[string]string{"history": remote}, idle: 10 * time.Millisecond, tune: tune},
		WorkDir: b.TempDir(), Tick: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- batcher.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	changes := make([]changeArgs, 200)
	for i := range changes {
		changes[i] = changeArgs{name: fmt.Sprintf("cm-%d", i)}
	}
	start := journaledChanges.Value()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batcher.Record(ctx, cmChange("history", changes[i%len(changes)].name, "alice", v1alpha1.OperationUpdate, fmt.Sprint(i)))
	}
	for {
		st, ok := batcher.Status(key)
		taken := journaledChanges.Value() - start
		if ok && taken >= float64(b.N) && st.Backlog() == 0 && st.Unpushed == 0 && st.Reason == "" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
}

type changeArgs struct{ name string }

func bareRepoB(b *testing.B) string {
	dir := b.TempDir() + "/remote.git"
	if out, err := execGit("init", "-q", "--bare", "-b", "main", dir); err != nil {
		b.Fatalf("git init: %v: %s", err, out)
	}
	return dir
}
