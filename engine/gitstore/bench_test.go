package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Commit cost against repository size: the Writer rewrites only the trees
// on the changed paths, so committing 10 files should cost about the same in
// a 100-file and a 50,000-file repository. The git CLI (add + commit, which
// must read and rewrite the index of every tracked file) is measured beside
// it on the same repository shapes.
//
//	go test -run '^$' -bench 'Commit' -benchmem ./engine/gitstore/

// fixtureShape lays files out like the operator does:
// <namespace>/<kind>/<name>.yaml.
type fixtureShape struct {
	namespaces, kinds, objects int
}

func (s fixtureShape) files() int { return s.namespaces * s.kinds * s.objects }

func (s fixtureShape) path(ns, kind, obj int) string {
	return fmt.Sprintf("ns-%03d/kind-%02d/obj-%04d.yaml", ns, kind, obj)
}

var benchShapes = []fixtureShape{
	{namespaces: 4, kinds: 5, objects: 5},     // 100 files
	{namespaces: 100, kinds: 10, objects: 50}, // 50,000 files
}

// changedPaths returns the 10 files iteration i rewrites, spread over
// different namespaces and kinds as a batch of real changes would be.
func (s fixtureShape) changedPaths(i int) []string {
	paths := make([]string, 10)
	for k := range paths {
		paths[k] = s.path((k*7+i)%s.namespaces, (k+i)%s.kinds, (k*13+i)%s.objects)
	}
	return paths
}

func benchContent(path string, i int) []byte {
	return []byte(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  revision: \"%d\"\n", path, i))
}

// buildBareFixture creates, in dir, a bare repository with one commit
// holding every file of shape, using git fast-import (seconds for 50,000
// files).
func buildBareFixture(dir string, shape fixtureShape) (string, error) {
	repo := filepath.Join(dir, "fixture.git")
	if out, err := gitOutput("", "init", "-q", "--bare", "--initial-branch=main", repo); err != nil {
		return "", fmt.Errorf("git init: %w: %s", err, out)
	}
	var stream bytes.Buffer
	fmt.Fprintf(&stream, "commit refs/heads/main\ncommitter Fixture <fixture@example.com> 1700000000 +0000\ndata 8\nfixture\n")
	for ns := 0; ns < shape.namespaces; ns++ {
		for kind := 0; kind < shape.kinds; kind++ {
			for obj := 0; obj < shape.objects; obj++ {
				p := shape.path(ns, kind, obj)
				content := benchContent(p, -1)
				fmt.Fprintf(&stream, "M 100644 inline %s\ndata %d\n%s\n", p, len(content), content)
			}
		}
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = repo
	cmd.Env = gitEnv(os.TempDir())
	cmd.Stdin = &stream
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git fast-import: %w: %s", err, out)
	}
	return repo, nil
}

// lazyFixture builds a fixture the first time a sub-benchmark runs and
// reuses it when the testing package re-runs it with a larger b.N. Its
// directories belong to the parent benchmark, which outlives those runs.
type lazyFixture struct {
	parent *testing.B
	build  func(dir string) (any, error)
	value  any
}

func (f *lazyFixture) get(b *testing.B) any {
	b.Helper()
	if f.value == nil {
		v, err := f.build(f.parent.TempDir())
		if err != nil {
			b.Fatalf("building fixture: %v", err)
		}
		f.value = v
	}
	return f.value
}

// BenchmarkWriterCommit10 measures Commit with the clone on disk (Config.Dir),
// as the operator runs it: every new object is a loose object file.
func BenchmarkWriterCommit10(b *testing.B) {
	benchmarkWriterCommit10(b, true)
}

// BenchmarkWriterCommit10InMemory measures Commit with in-memory storage
// (Config.Dir == ""): the cost of building trees and objects without disk
// I/O.
func BenchmarkWriterCommit10InMemory(b *testing.B) {
	benchmarkWriterCommit10(b, false)
}

func benchmarkWriterCommit10(b *testing.B, onDisk bool) {
	requireGit(b)
	for _, shape := range benchShapes {
		fixture := &lazyFixture{parent: b, build: func(dir string) (any, error) {
			remote, err := buildBareFixture(dir, shape)
			if err != nil {
				return nil, err
			}
			clone := ""
			if onDisk {
				// The writer's clone directory starts as a copy of the
				// remote, as after a first fetch.
				clone = filepath.Join(dir, "clone")
				if out, err := gitOutput("", "clone", "-q", "--bare", remote, clone); err != nil {
					return nil, fmt.Errorf("git clone: %w: %s", err, out)
				}
			}
			w, err := Open(context.Background(), Config{URL: remote, Branch: "main", Dir: clone, Committer: testCommitter()})
			if err != nil {
				return nil, err
			}
			b.Cleanup(func() { _ = w.Close() })
			return w, nil
		}}
		// seq keeps contents changing when the testing package re-runs the
		// sub-benchmark with a larger b.N on the same repository.
		seq := 0
		b.Run(fmt.Sprintf("files=%d", shape.files()), func(b *testing.B) {
			w := fixture.get(b).(*Writer)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				seq++
				i := seq
				paths := shape.changedPaths(i)
				changes := make([]FileChange, len(paths))
				for k, p := range paths {
					changes[k] = FileChange{Path: p, Content: benchContent(p, i)}
				}
				_, err := w.Commit(ctx, CommitRequest{
					Author:  Signature{Name: "bench", Email: "bench@example.com"},
					Message: fmt.Sprintf("change %d", i),
					Changes: changes,
				})
				if err != nil {
					b.Fatalf("Commit: %v", err)
				}
			}
		})
	}
}

func BenchmarkGitCLICommit10(b *testing.B) {
	requireGit(b)
	for _, shape := range benchShapes {
		fixture := &lazyFixture{parent: b, build: func(dir string) (any, error) {
			remote, err := buildBareFixture(dir, shape)
			if err != nil {
				return nil, err
			}
			work := filepath.Join(dir, "work")
			if out, err := gitOutput("", "clone", "-q", remote, work); err != nil {
				return nil, fmt.Errorf("git clone: %w: %s", err, out)
			}
			return work, nil
		}}
		seq := 0
		b.Run(fmt.Sprintf("files=%d", shape.files()), func(b *testing.B) {
			work := fixture.get(b).(string)
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				seq++
				i := seq
				paths := shape.changedPaths(i)
				for _, p := range paths {
					if err := os.WriteFile(filepath.Join(work, filepath.FromSlash(p)), benchContent(p, i), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				runGit(b, work, append([]string{"add", "--"}, paths...)...)
				runGit(b, work, "commit", "-q", "-m", fmt.Sprintf("change %d", i))
			}
		})
	}
}
