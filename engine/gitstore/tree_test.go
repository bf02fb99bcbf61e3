package gitstore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
)

// countingStorage counts object reads, to show which trees an edit touches.
type countingStorage struct {
	*memory.Storage
	reads int
}

func (c *countingStorage) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	c.reads++
	return c.Storage.EncodedObject(t, h)
}

func writeEdits(files map[string]string) []edit {
	var edits []edit
	for p, content := range files {
		if content == "" {
			edits = append(edits, edit{path: p, delete: true})
			continue
		}
		edits = append(edits, edit{path: p, blob: BlobHash([]byte(content)), content: []byte(content)})
	}
	return edits
}

// buildTree makes a tree of dirs directories with perDir files each.
func buildTree(t *testing.T, s *countingStorage, dirs, perDir int) plumbing.Hash {
	t.Helper()
	files := map[string]string{}
	for d := 0; d < dirs; d++ {
		for f := 0; f < perDir; f++ {
			files[fmt.Sprintf("ns-%03d/deployments/obj-%03d.yaml", d, f)] = fmt.Sprintf("d%d f%d\n", d, f)
		}
	}
	root, changed, err := treeEditor{s: s}.apply(plumbing.ZeroHash, writeEdits(files))
	if err != nil || !changed {
		t.Fatalf("building fixture: changed=%v err=%v", changed, err)
	}
	return root
}

func TestTreeEditor_apply_readsOnlyTreesOnChangedPaths(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		wantReads int // trees read: root + one per directory level per distinct path
	}{
		{
			name:      "one file in one namespace",
			files:     map[string]string{"ns-007/deployments/obj-001.yaml": "new\n"},
			wantReads: 3,
		},
		{
			name: "three files in two namespaces",
			files: map[string]string{
				"ns-007/deployments/obj-001.yaml": "new\n",
				"ns-007/deployments/obj-002.yaml": "new\n",
				"ns-031/deployments/obj-001.yaml": "",
			},
			wantReads: 5,
		},
		{
			name:      "new namespace",
			files:     map[string]string{"ns-new/services/svc.yaml": "new\n"},
			wantReads: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &countingStorage{Storage: memory.NewStorage()}
			root := buildTree(t, s, 50, 100)
			s.reads = 0
			_, changed, err := treeEditor{s: s}.apply(root, writeEdits(tt.files))
			if err != nil || !changed {
				t.Fatalf("apply: changed=%v err=%v", changed, err)
			}
			if s.reads != tt.wantReads {
				t.Errorf("object reads = %d, want %d (5000-file tree)", s.reads, tt.wantReads)
			}
		})
	}
}

func TestTreeEditor_apply_isDeterministic(t *testing.T) {
	files := map[string]string{"b/x": "1", "a/y": "2", "a/b/c": "3", "a.b": "4", "a-b": "5"}
	s := &countingStorage{Storage: memory.NewStorage()}
	first, _, err := treeEditor{s: s}.apply(plumbing.ZeroHash, writeEdits(files))
	if err != nil {
		t.Fatal(err)
	}
	// Same files, one at a time: the same root tree must result.
	root := plumbing.ZeroHash
	keys := make([]string, 0, len(files))
	for p := range files {
		keys = append(keys, p)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	for _, p := range keys {
		root, _, err = treeEditor{s: s}.apply(root, writeEdits(map[string]string{p: files[p]}))
		if err != nil {
			t.Fatal(err)
		}
	}
	if root != first {
		t.Errorf("incremental root %s != batch root %s", root, first)
	}
}

func TestTreeDiff_reportsChangedFilesOnly(t *testing.T) {
	s := &countingStorage{Storage: memory.NewStorage()}
	base := buildTree(t, s, 5, 5)
	change := map[string]string{
		"ns-001/deployments/obj-001.yaml": "changed\n",
		"ns-002/deployments/obj-004.yaml": "",
		"ns-009/new/file.yaml":            "added\n",
	}
	next, _, err := treeEditor{s: s}.apply(base, writeEdits(change))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var newObjects int
	err = treeDiff(s, base, next, "", func(e edit) {
		if e.delete {
			got = append(got, "-"+e.path)
		} else {
			got = append(got, "+"+e.path)
		}
	}, func(plumbing.Hash) { newObjects++ })
	if err != nil {
		t.Fatalf("treeDiff: %v", err)
	}
	sort.Strings(got)
	want := "+ns-001/deployments/obj-001.yaml,+ns-009/new/file.yaml,-ns-002/deployments/obj-004.yaml"
	if strings.Join(got, ",") != want {
		t.Errorf("diff = %v, want %s", got, want)
	}
	// root + ns-001 + its deployments + ns-002 + its deployments + ns-009 +
	// new = 7 trees, and 2 blobs.
	if newObjects != 9 {
		t.Errorf("new objects = %d, want 9", newObjects)
	}
}

func TestCleanPath_cases(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "a/b.yaml", want: "a/b.yaml"},
		{in: "a//b/./c.yaml", want: "a/b/c.yaml"},
		{in: "a/b/", want: "a/b"},
		{in: ".gitignore", want: ".gitignore"},
		{in: "a/.github/x", want: "a/.github/x"},
		{in: "", wantErr: true},
		{in: ".", wantErr: true},
		{in: "/a", wantErr: true},
		{in: "..", wantErr: true},
		{in: "a/../b", wantErr: true},
		{in: ".git", wantErr: true},
		{in: "x/.Git/config", wantErr: true},
		{in: "a\x00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := CleanPath(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidPath) {
					t.Fatalf("CleanPath(%q) = %q, %v; want ErrInvalidPath", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
