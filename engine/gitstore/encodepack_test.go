package gitstore

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
)

// TestEncodePack_gitReadsIt: the commit's own pack encoder writes packs
// that git's index-pack accepts and reads back byte for byte, for sizes
// at the edges of the entry header's size encoding.
func TestEncodePack_gitReadsIt(t *testing.T) {
	repo := newBareRemote(t)
	b := newObjectBuffer(memory.NewStorage(), "")
	want := map[plumbing.Hash][]byte{}
	for _, n := range []int{0, 1, 15, 16, 127, 2047, 2048, 262143, 262144, 1 << 20} {
		content := bytes.Repeat([]byte("apiVersion: v1\nkind: ConfigMap\n"), n/31+1)[:n]
		h := plumbing.ComputeHash(plumbing.BlobObject, content)
		if _, err := b.SetEncodedObject(&blobRef{hash: h, content: content}); err != nil {
			t.Fatal(err)
		}
		want[h] = content
	}
	m := &plumbing.MemoryObject{}
	m.SetType(plumbing.BlobObject)
	_, _ = m.Write([]byte("a memory object\n"))
	if _, err := b.SetEncodedObject(m); err != nil {
		t.Fatal(err)
	}
	want[m.Hash()] = []byte("a memory object\n")

	var pack bytes.Buffer
	if err := b.encodePack(&pack); err != nil {
		t.Fatalf("encodePack: %v", err)
	}
	file := filepath.Join(repo, "objects", "pack", "test.pack")
	if err := os.WriteFile(file, pack.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	runGit(t, repo, "index-pack", "--strict", file)
	runGit(t, repo, "verify-pack", strings.TrimSuffix(file, ".pack")+".idx")
	for h, content := range want {
		got, err := gitOutputRaw(repo, "cat-file", "blob", h.String())
		if err != nil {
			t.Fatalf("cat-file %s: %v", h, err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("blob %s: got %d bytes, want %d", h, len(got), len(content))
		}
	}
}

func TestEntryHeader(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want []byte
	}{
		{0, []byte{0x30}},
		{15, []byte{0x3f}},
		{16, []byte{0xb0, 0x01}},
		{2047, []byte{0xbf, 0x7f}},
		{2048, []byte{0xb0, 0x80, 0x01}},
	} {
		if got := entryHeader(nil, plumbing.BlobObject, tc.size); !bytes.Equal(got, tc.want) {
			t.Errorf("entryHeader(blob, %d) = %x, want %x", tc.size, got, tc.want)
		}
	}
}

// gitOutputRaw runs git in dir and returns its standard output untouched.
func gitOutputRaw(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(os.TempDir())
	return cmd.Output()
}
