package gitstore

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// hungListener accepts TCP connections and never answers.
func hungListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + l.Addr().String() + "/repo.git"
}

// TestNetwork_timeout_cutsOffAHungRemote: a remote that accepts the
// connection and never answers ends push, pull and the remote check with a
// deadline error, not a hang.
func TestNetwork_timeout_cutsOffAHungRemote(t *testing.T) {
	url := hungListener(t)
	w, err := OpenLocal(Config{URL: url, Branch: "main", Dir: t.TempDir(), Committer: testCommitter(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	commitFiles(t, w, "alice", "one", map[string]string{"a.yaml": "a: 1\n"})
	tests := []struct {
		name string
		call func() error
	}{
		{"push", func() error { _, err := w.Push(context.Background()); return err }},
		{"pull", func() error { _, err := w.Pull(context.Background()); return err }},
		{"check", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := CheckRemote(ctx, RemoteSpec{URL: url, Branch: "main"}, nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s = %v, want a deadline error", tt.name, err)
			}
		})
	}
}

// TestPendingInDir_recreatesUnpushedCommits: the commits a clone never
// pushed come back as requests with their author, message and files, and
// recreate the same tree in a fresh clone of another remote.
func TestPendingInDir_recreatesUnpushedCommits(t *testing.T) {
	requireGit(t)
	old := newBareRemote(t)
	dir := filepath.Join(t.TempDir(), "old")
	w := openWriter(t, old, dir)
	commitFiles(t, w, "alice", "pushed", map[string]string{"a.yaml": "a: 1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	commitFiles(t, w, "alice", "first unpushed", map[string]string{"b.yaml": "b: 1\n", "a.yaml": ""})
	commitFiles(t, w, "bob", "second unpushed", map[string]string{"dir/c.yaml": "c: 1\n"})
	_ = w.Close()

	reqs, err := PendingInDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Author.Name != "alice" || reqs[1].Author.Name != "bob" || reqs[1].Message != "second unpushed\n" {
		t.Fatalf("pending = %+v, want alice's then bob's unpushed commit", reqs)
	}
	fresh := openWriter(t, newBareRemote(t), filepath.Join(t.TempDir(), "new"))
	for _, r := range reqs {
		if _, err := fresh.Commit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := fresh.ReadFile("a.yaml"); ok {
		t.Fatal("a.yaml was never in the new repository; its delete must not bring it")
	}
	for p, want := range map[string]string{"b.yaml": "b: 1\n", "dir/c.yaml": "c: 1\n"} {
		if got, ok, _ := fresh.ReadFile(p); !ok || string(got) != want {
			t.Fatalf("%s = %q, want %q", p, got, want)
		}
	}
	if none, err := PendingInDir(filepath.Join(t.TempDir(), "missing")); err != nil || none != nil {
		t.Fatalf("a missing dir = %v, %v; want none", none, err)
	}
}
