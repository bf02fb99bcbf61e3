package gitstore

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
)

// looseObjects counts the loose object files of the bare clone dir.
func looseObjects(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	entries, err := os.ReadDir(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() || len(e.Name()) != 2 {
			continue // pack/, info/
		}
		files, err := os.ReadDir(filepath.Join(dir, "objects", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		n += len(files)
	}
	return n
}

func packCount(t *testing.T, dir string) int {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return len(packs)
}

func TestWriter_Commit_writesObjectsAsOnePack(t *testing.T) {
	tests := []struct {
		name    string
		commits int
		// maxPacks bounds the clone's packs after the commits.
		maxPacks int
	}{
		{name: "one commit, one pack", commits: 1, maxPacks: 1},
		{name: "more commits than the bound merges packs", commits: maxPacks + 10, maxPacks: maxPacks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := newBareRemote(t)
			dir := filepath.Join(t.TempDir(), "clone")
			w := openWriter(t, remote, dir)
			for i := 0; i < tt.commits; i++ {
				commitFiles(t, w, "alice", fmt.Sprintf("commit %d", i), map[string]string{
					fmt.Sprintf("ns/core/configmaps/cm-%d.yaml", i): fmt.Sprintf("v: %d\n", i),
					"ns/core/configmaps/shared.yaml":                fmt.Sprintf("last: %d\n", i),
				})
			}
			if n := looseObjects(t, dir); n != 0 {
				t.Errorf("the clone has %d loose objects, want 0 (every commit's objects in a pack)", n)
			}
			if n := packCount(t, dir); n == 0 || n > tt.maxPacks {
				t.Errorf("the clone has %d packs, want 1..%d", n, tt.maxPacks)
			}
			// Every file of every commit reads back, in the writer and
			// in git itself.
			for i := 0; i < tt.commits; i++ {
				p := fmt.Sprintf("ns/core/configmaps/cm-%d.yaml", i)
				b, ok, err := w.ReadFile(p)
				if err != nil || !ok || string(b) != fmt.Sprintf("v: %d\n", i) {
					t.Errorf("ReadFile(%q) = %q, %v, %v", p, b, ok, err)
				}
			}
			fsck(t, dir)
			if got := runGit(t, dir, "rev-list", "--count", "main"); strings.TrimSpace(got) != fmt.Sprint(tt.commits) {
				t.Errorf("git rev-list --count main = %s, want %d", got, tt.commits)
			}
			if _, err := w.Push(context.Background()); err != nil {
				t.Fatalf("Push: %v", err)
			}
			fsck(t, remote)
			want := fmt.Sprintf("last: %d", tt.commits-1)
			if show := runGit(t, remote, "show", "main:ns/core/configmaps/shared.yaml"); strings.TrimSpace(show) != want {
				t.Errorf("remote shared.yaml = %q, want %q", show, want)
			}
		})
	}
}

// TestObjectBuffer_blobs_cases: a commit's buffer holds the caller's blob
// bytes, not a copy (a reconcile's commit holds thousands of blobs), reads
// them back under their hash, and a store that keeps objects as given (the
// in-memory one) gets a copy of its own at flush.
func TestObjectBuffer_blobs_cases(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{name: "a file", content: "apiVersion: v1\nkind: ConfigMap\n"},
		{name: "an empty file", content: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.NewStorage()
			buf := newObjectBuffer(store, "")
			content := []byte(tt.content)
			h, err := treeEditor{s: buf}.storeBlob(content, BlobHash(content))
			if err != nil {
				t.Fatal(err)
			}
			if h != BlobHash(content) {
				t.Fatalf("hash %s, want %s", h, BlobHash(content))
			}
			ref, ok := buf.objs[h].(*blobRef)
			if !ok || (len(content) > 0 && &ref.content[0] != &content[0]) {
				t.Fatalf("the buffer holds %T, want the caller's bytes", buf.objs[h])
			}
			o, err := buf.EncodedObject(plumbing.BlobObject, h)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, o); got != tt.content {
				t.Fatalf("read %q, want %q", got, tt.content)
			}
			if err := buf.flush(); err != nil {
				t.Fatal(err)
			}
			if len(content) > 0 {
				content[0] ^= 0xff // the caller reuses its bytes
			}
			stored, err := store.EncodedObject(plumbing.BlobObject, h)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, stored); got != tt.content || stored.Hash() != h {
				t.Fatalf("the store holds %q (%s), want %q (%s)", got, stored.Hash(), tt.content, h)
			}
		})
	}
}

func readAll(t *testing.T, o plumbing.EncodedObject) string {
	t.Helper()
	r, err := o.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
