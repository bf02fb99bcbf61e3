package reconcile

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

const benchObjects = 10000

// benchConfigMap is a ConfigMap of about 600 bytes of YAML, with the
// server fields the sanitizer drops.
func benchConfigMap(i int, version string) unstructured.Unstructured {
	data := map[string]any{"version": version}
	for k := 0; k < 8; k++ {
		data[fmt.Sprintf("key-%d", k)] = strings.Repeat("x", 40)
	}
	return unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": fmt.Sprintf("cm-%05d", i), "namespace": fmt.Sprintf("ns-%02d", i%20),
			"uid": fmt.Sprintf("uid-%d", i), "resourceVersion": fmt.Sprint(1000 + i),
			"creationTimestamp": "2026-11-30T10:00:00Z",
			"labels":            map[string]any{"app": "bench"},
			"managedFields":     []any{map[string]any{"manager": "kubectl", "operation": "Update", "time": "2026-11-30T10:00:00Z"}},
		},
		"data": data,
	}}
}

// benchFixture is a branch with the rendered files of benchObjects
// ConfigMaps, and the cluster in two states: equal to it, and differing by
// 1% (50 changed, 25 new, 25 deleted objects).
type benchFixture struct {
	writer   *gitstore.Writer
	matching []unstructured.Unstructured
	differ   []unstructured.Unstructured
}

var (
	fixtureOnce sync.Once
	fixture     *benchFixture
	fixtureErr  error
)

func loadFixture(b *testing.B) *benchFixture {
	b.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = buildFixture(b.TempDir()) })
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixture
}

func buildFixture(dir string) (*benchFixture, error) {
	remote := filepath.Join(dir, "remote.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", remote).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git init: %w: %s", err, out)
	}
	ctx := context.Background()
	w, err := gitstore.Open(ctx, gitstore.Config{URL: remote, Branch: "main", Committer: gitstore.Signature{Name: "bench"}})
	if err != nil {
		return nil, err
	}
	f := &benchFixture{writer: w}
	req := gitstore.CommitRequest{Author: gitstore.Signature{Name: "bench"}, Message: "fixture"}
	for i := 0; i < benchObjects; i++ {
		o := benchConfigMap(i, "1")
		f.matching = append(f.matching, o)
		switch {
		case i < 50:
			f.differ = append(f.differ, benchConfigMap(i, "2"))
		case i < benchObjects-25:
			f.differ = append(f.differ, o)
		}
		p, content, err := renderDefault(ctx, nil, configMaps, &o)
		if err != nil {
			return nil, err
		}
		req.Changes = append(req.Changes, gitstore.FileChange{Path: p, Content: content})
	}
	for i := benchObjects; i < benchObjects+25; i++ {
		f.differ = append(f.differ, benchConfigMap(i, "1"))
	}
	req.Changes = append(req.Changes, gitstore.FileChange{Path: "cluster/README.md", Content: []byte("# cluster\n")})
	if _, err := w.Commit(ctx, req); err != nil {
		return nil, err
	}
	return f, nil
}

type sliceLister []unstructured.Unstructured

func (l sliceLister) List(context.Context, schema.GroupVersionResource, string) (Listing, error) {
	return Listing{Kind: "ConfigMap", Items: l}, nil
}

// BenchmarkMake_10000 plans a full reconcile of 10,000 ConfigMaps: the
// branch's tree is walked (gitstore ListFiles), every object rendered
// through the built-in sanitizer, YAML and default layout, and compared by
// blob hash. cpu-s/op is the process's CPU time per plan (GC included);
// peak-heap-MB is the largest heap in use during a plan above
// the heap before it (sampled every millisecond).
func BenchmarkMake_10000(b *testing.B) {
	f := loadFixture(b)
	rule := &rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "all"},
		Resources: []rules.Resource{{GVR: configMaps, Namespaced: true}}}
	for _, tc := range []struct {
		name    string
		cluster []unstructured.Unstructured
		changes int
	}{
		{name: "matching", cluster: f.matching, changes: 0},
		{name: "differs-1pct", cluster: f.differ, changes: 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cache := &IdentityCache{}
			b.ReportAllocs()
			var peak uint64
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				stop := sampleHeap(&peak)
				files, err := f.writer.ListFiles("cluster")
				if err != nil {
					b.Fatal(err)
				}
				plan, err := Make(context.Background(), Input{Rules: []*rules.Rule{rule}, Lister: sliceLister(tc.cluster),
					Render: renderDefault, Files: files, Read: f.writer.ReadFile, Cache: cache})
				if err != nil {
					b.Fatal(err)
				}
				stop()
				if got := len(plan.Writes) + len(plan.Removals); got != tc.changes {
					b.Fatalf("plan has %d changes, want %d", got, tc.changes)
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}

// cpuTime is the process's user and system CPU time: on a loaded machine
// it tells the plan's cost better than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleHeap records into peak the largest heap in use (live and not yet
// swept objects) above the current one until stop is called. It reads
// runtime/metrics, which does not stop the world as ReadMemStats does.
func sampleHeap(peak *uint64) (stop func()) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for !done.Load() {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base && v-base > *peak {
				*peak = v - base
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() {
		done.Store(true)
		wg.Wait()
	}
}
