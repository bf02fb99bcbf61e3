package gitstore

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrInvalidPath is returned for a path that is empty, absolute, contains a
// ".." or ".git" component, or a NUL byte.
var ErrInvalidPath = errors.New("invalid repository path")

// ErrPathConflict is returned when a change would turn a file into a
// directory or a directory into a file, or would delete a directory.
var ErrPathConflict = errors.New("path conflicts with an existing file or directory")

// BlobHash returns the Git object id a file with content would have. A full
// reconcile compares it with the hashes from ListFiles without reading blobs.
func BlobHash(content []byte) plumbing.Hash {
	return plumbing.ComputeHash(plumbing.BlobObject, content)
}

// CleanPath validates a repository-relative path and returns it in canonical
// form (slash separated, no empty or "." components). It rejects absolute
// paths, ".." and ".git" components (any letter case) and NUL bytes, so that
// no change can escape the repository root or write Git metadata.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: empty path", ErrInvalidPath)
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrInvalidPath, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidPath, p)
	}
	// Check the raw components before cleaning: path.Clean would silently
	// resolve "a/../b" to "b", hiding an attempt to climb.
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q contains '..'", ErrInvalidPath, p)
		}
		if strings.EqualFold(c, ".git") {
			return "", fmt.Errorf("%w: %q contains a .git component", ErrInvalidPath, p)
		}
	}
	cleaned := path.Clean(p)
	if cleaned == "." {
		return "", fmt.Errorf("%w: %q names the repository root", ErrInvalidPath, p)
	}
	return cleaned, nil
}

// edit is one file state to establish in a tree: a blob at a path, or no
// entry at that path.
type edit struct {
	path   string
	delete bool
	blob   plumbing.Hash
	// content is stored as blob only if the tree actually changes; nil
	// means the blob is already in the object store (replay).
	content []byte
	// mode is the file mode to write; zero keeps an existing executable
	// bit and otherwise writes a regular file.
	mode filemode.FileMode
}

// editDir groups edits by directory so that every tree along the changed
// paths is read and written exactly once.
type editDir struct {
	dirs  map[string]*editDir
	files map[string]*edit
}

func newEditDir() *editDir {
	return &editDir{dirs: map[string]*editDir{}, files: map[string]*edit{}}
}

// buildEditDirs arranges edits (paths already cleaned) into a directory
// trie. A later edit of the same path replaces an earlier one. A path used
// both as a file and as a directory in the same set is a conflict.
func buildEditDirs(edits []edit) (*editDir, error) {
	root := newEditDir()
	for i := range edits {
		e := &edits[i]
		parts := strings.Split(e.path, "/")
		d := root
		for _, name := range parts[:len(parts)-1] {
			if _, isFile := d.files[name]; isFile {
				return nil, fmt.Errorf("%w: %q is used as a file and as a directory in one commit", ErrPathConflict, e.path)
			}
			sub, ok := d.dirs[name]
			if !ok {
				sub = newEditDir()
				d.dirs[name] = sub
			}
			d = sub
		}
		name := parts[len(parts)-1]
		if _, isDir := d.dirs[name]; isDir {
			return nil, fmt.Errorf("%w: %q is used as a file and as a directory in one commit", ErrPathConflict, e.path)
		}
		d.files[name] = e
	}
	return root, nil
}

// treeEditor rewrites trees along changed paths in an object store.
type treeEditor struct {
	s storer.EncodedObjectStorer
}

// apply returns the root tree that results from applying edits to the tree
// root (zero hash for an empty tree) and whether it differs from root. Only
// the trees on the edited paths are read; unchanged subtrees are reused by
// hash, so the cost follows the size of the change, not of the repository.
func (te treeEditor) apply(root plumbing.Hash, edits []edit) (plumbing.Hash, bool, error) {
	dirs, err := buildEditDirs(edits)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	newRoot, changed, err := te.rewrite(root, dirs, "")
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	if !changed {
		return root, false, nil
	}
	if newRoot.IsZero() {
		// Every file was removed: a commit still needs a (empty) tree.
		newRoot, err = te.storeTree(nil)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
	}
	return newRoot, newRoot != root, nil
}

// rewrite applies the edits in d to the tree treeHash (zero: absent). It
// returns the new tree hash (zero if the tree became empty) and whether
// anything changed.
func (te treeEditor) rewrite(treeHash plumbing.Hash, d *editDir, dirPath string) (plumbing.Hash, bool, error) {
	var entries []object.TreeEntry
	if !treeHash.IsZero() {
		t, err := object.GetTree(te.s, treeHash)
		if err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("reading tree %q (%s): %w", dirPath, treeHash, err)
		}
		entries = make([]object.TreeEntry, len(t.Entries), len(t.Entries)+len(d.files)+len(d.dirs))
		copy(entries, t.Entries)
	}
	index := make(map[string]int, len(entries))
	for i, e := range entries {
		index[e.Name] = i
	}
	removed := make(map[int]bool)
	changed := false

	for name, e := range d.files {
		i, exists := index[name]
		if exists && removed[i] {
			exists = false
		}
		if exists && !isFileMode(entries[i].Mode) {
			return plumbing.ZeroHash, false, fmt.Errorf("%w: %q is a directory or submodule", ErrPathConflict, e.path)
		}
		if e.delete {
			if exists {
				removed[i] = true
				changed = true
			}
			continue
		}
		mode := e.mode
		if mode == 0 {
			mode = filemode.Regular
			if exists && entries[i].Mode == filemode.Executable {
				mode = filemode.Executable
			}
		}
		if exists && entries[i].Hash == e.blob && entries[i].Mode == mode {
			continue // same content: a no-op write
		}
		if e.content != nil {
			if _, err := te.storeBlob(e.content, e.blob); err != nil {
				return plumbing.ZeroHash, false, fmt.Errorf("storing blob for %q: %w", e.path, err)
			}
		}
		entry := object.TreeEntry{Name: name, Mode: mode, Hash: e.blob}
		if exists {
			entries[i] = entry
		} else {
			entries = append(entries, entry)
		}
		changed = true
	}

	for name, sub := range d.dirs {
		i, exists := index[name]
		var subHash plumbing.Hash
		if exists {
			if entries[i].Mode != filemode.Dir {
				return plumbing.ZeroHash, false, fmt.Errorf("%w: %q is a file", ErrPathConflict, joinPath(dirPath, name))
			}
			subHash = entries[i].Hash
		}
		newSub, subChanged, err := te.rewrite(subHash, sub, joinPath(dirPath, name))
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		if !subChanged {
			continue
		}
		changed = true
		switch {
		case newSub.IsZero() && exists:
			removed[i] = true // the directory became empty
		case newSub.IsZero():
			// An absent directory stayed absent.
		case exists:
			entries[i].Hash = newSub
		default:
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: newSub})
		}
	}

	if !changed {
		return treeHash, false, nil
	}
	if len(removed) > 0 {
		kept := entries[:0]
		for i, e := range entries {
			if !removed[i] {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, !treeHash.IsZero(), nil
	}
	sort.Sort(object.TreeEntrySorter(entries))
	h, err := te.storeTree(entries)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("storing tree %q: %w", dirPath, err)
	}
	return h, h != treeHash, nil
}

// storeBlob stores content, whose blob hash is h.
func (te treeEditor) storeBlob(content []byte, h plumbing.Hash) (plumbing.Hash, error) {
	if b, ok := te.s.(*objectBuffer); ok {
		// Held until the packfile is written: the caller's bytes, not a
		// copy (a reconcile's commit holds thousands of blobs), under
		// the hash the edit computed.
		return b.SetEncodedObject(&blobRef{hash: h, content: content})
	}
	obj := te.s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(content)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(content); err != nil {
		_ = w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return te.s.SetEncodedObject(obj)
}

// storeTree encodes sorted entries in Git's tree format with one write
// (object.Tree.Encode formats every entry through fmt, which dominated the
// cost of a commit in memory).
func (te treeEditor) storeTree(entries []object.TreeEntry) (plumbing.Hash, error) {
	size := 0
	for _, e := range entries {
		size += 7 + 1 + len(e.Name) + 1 + len(e.Hash)
	}
	buf := make([]byte, 0, size)
	for _, e := range entries {
		buf = strconv.AppendUint(buf, uint64(e.Mode), 8)
		buf = append(buf, ' ')
		buf = append(buf, e.Name...)
		buf = append(buf, 0)
		buf = append(buf, e.Hash[:]...)
	}
	obj := te.s.NewEncodedObject()
	obj.SetType(plumbing.TreeObject)
	obj.SetSize(int64(len(buf)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(buf); err != nil {
		_ = w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return te.s.SetEncodedObject(obj)
}

// isFileMode reports whether a tree entry mode is a file Git tracks by
// content (regular, executable, symlink).
func isFileMode(m filemode.FileMode) bool {
	return m == filemode.Regular || m == filemode.Executable || m == filemode.Symlink || m == filemode.Deprecated
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// lookup finds the entry at cleaned path p below the tree root. It reads
// only the trees along p.
func lookup(s storer.EncodedObjectStorer, root plumbing.Hash, p string) (object.TreeEntry, bool, error) {
	if root.IsZero() {
		return object.TreeEntry{}, false, nil
	}
	cur := object.TreeEntry{Name: "", Mode: filemode.Dir, Hash: root}
	if p == "" {
		return cur, true, nil
	}
	for _, name := range strings.Split(p, "/") {
		if cur.Mode != filemode.Dir {
			return object.TreeEntry{}, false, nil
		}
		t, err := object.GetTree(s, cur.Hash)
		if err != nil {
			return object.TreeEntry{}, false, fmt.Errorf("reading tree %s: %w", cur.Hash, err)
		}
		found := false
		for _, e := range t.Entries {
			if e.Name == name {
				cur, found = e, true
				break
			}
		}
		if !found {
			return object.TreeEntry{}, false, nil
		}
	}
	return cur, true, nil
}

// FileInfo is a file in the repository and the Git object id of its content.
type FileInfo struct {
	// Path is the slash-separated path from the repository root.
	Path string
	// Hash is the blob id; compare with BlobHash(content).
	Hash plumbing.Hash
}

// walkFiles appends every file below the tree treeHash (at dirPath) to out.
// Submodule entries are not files and are skipped.
func walkFiles(s storer.EncodedObjectStorer, treeHash plumbing.Hash, dirPath string, out []FileInfo) ([]FileInfo, error) {
	t, err := object.GetTree(s, treeHash)
	if err != nil {
		return nil, fmt.Errorf("reading tree %q (%s): %w", dirPath, treeHash, err)
	}
	for _, e := range t.Entries {
		p := joinPath(dirPath, e.Name)
		switch {
		case e.Mode == filemode.Dir:
			out, err = walkFiles(s, e.Hash, p, out)
			if err != nil {
				return nil, err
			}
		case isFileMode(e.Mode):
			out = append(out, FileInfo{Path: p, Hash: e.Hash})
		}
	}
	return out, nil
}

// treeDiff compares the trees a (old, zero: empty) and b (new), descending
// only into subtrees whose hashes differ. For every file whose state in b
// differs from a it calls onEdit; for every object of b that a does not
// share by hash at the same place (trees and blobs) it calls onNew. A path
// that is a file on one side and a directory on the other is reported as
// ErrPathConflict: the writer never produces such commits.
func treeDiff(s storer.EncodedObjectStorer, a, b plumbing.Hash, dirPath string, onEdit func(edit), onNew func(plumbing.Hash)) error {
	if a == b {
		return nil
	}
	var aEntries, bEntries []object.TreeEntry
	if !a.IsZero() {
		t, err := object.GetTree(s, a)
		if err != nil {
			return fmt.Errorf("reading tree %q (%s): %w", dirPath, a, err)
		}
		aEntries = t.Entries
	}
	if !b.IsZero() {
		t, err := object.GetTree(s, b)
		if err != nil {
			return fmt.Errorf("reading tree %q (%s): %w", dirPath, b, err)
		}
		bEntries = t.Entries
		if onNew != nil {
			onNew(b)
		}
	}
	old := make(map[string]object.TreeEntry, len(aEntries))
	for _, e := range aEntries {
		old[e.Name] = e
	}
	for _, be := range bEntries {
		p := joinPath(dirPath, be.Name)
		ae, inA := old[be.Name]
		delete(old, be.Name)
		if inA && ae.Hash == be.Hash && ae.Mode == be.Mode {
			continue
		}
		bDir := be.Mode == filemode.Dir
		if inA && (ae.Mode == filemode.Dir) != bDir {
			return fmt.Errorf("%w: %q changes between file and directory", ErrPathConflict, p)
		}
		switch {
		case bDir:
			var aHash plumbing.Hash
			if inA {
				aHash = ae.Hash
			}
			if err := treeDiff(s, aHash, be.Hash, p, onEdit, onNew); err != nil {
				return err
			}
		case isFileMode(be.Mode):
			if onEdit != nil {
				onEdit(edit{path: p, blob: be.Hash, mode: be.Mode})
			}
			if onNew != nil {
				onNew(be.Hash)
			}
		default:
			return fmt.Errorf("%w: %q is a submodule", ErrPathConflict, p)
		}
	}
	for _, ae := range old {
		p := joinPath(dirPath, ae.Name)
		if ae.Mode == filemode.Dir {
			if err := treeDiff(s, ae.Hash, plumbing.ZeroHash, p, onEdit, onNew); err != nil {
				return err
			}
			continue
		}
		if onEdit != nil {
			onEdit(edit{path: p, delete: true})
		}
	}
	return nil
}
