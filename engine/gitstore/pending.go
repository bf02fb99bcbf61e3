package gitstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// PendingInDir returns the commits of the local clone in dir that its
// remote has not received (as far as its last fetch or push knows), oldest
// first, as requests that recreate them: author, author time, message and
// the files each changed. A target whose URL or branch changed starts from a
// fresh clone and commits these there, so nothing recorded while the old
// remote was unreachable is lost. A dir without a repository has none.
func PendingInDir(dir string) ([]CommitRequest, error) {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("gitstore: %w", err)
	}
	repo, store, err := openRepository(dir)
	if err != nil {
		return nil, err
	}
	if c, ok := store.(io.Closer); ok {
		defer c.Close()
	}
	head, err := store.Reference(plumbing.HEAD)
	if err != nil || head.Type() != plumbing.SymbolicReference {
		return nil, nil // nothing was ever configured here
	}
	_ = repo
	w := &Writer{store: store, branch: head.Target(),
		tracking: plumbing.NewRemoteReferenceName(remoteName, head.Target().Short())}
	local, err := w.ref(w.branch)
	if err != nil || local.IsZero() {
		return nil, err
	}
	base, err := w.ref(w.tracking)
	if err != nil {
		return nil, err
	}
	commits, _, err := w.pendingCommits(local, base)
	if err != nil {
		return nil, err
	}
	out := make([]CommitRequest, 0, len(commits))
	for _, c := range commits {
		req, err := w.requestOf(c)
		if err != nil {
			return nil, err
		}
		out = append(out, req)
	}
	return out, nil
}

// requestOf turns a commit into the request that recreates its changes on
// another head.
func (w *Writer) requestOf(c *object.Commit) (CommitRequest, error) {
	req := CommitRequest{Author: Signature{Name: c.Author.Name, Email: c.Author.Email}, When: c.Author.When, Message: c.Message}
	var parentTree plumbing.Hash
	if len(c.ParentHashes) > 0 {
		var err error
		if parentTree, err = w.treeOf(c.ParentHashes[0]); err != nil {
			return req, err
		}
	}
	var diffErr error
	collect := func(e edit) {
		if e.delete {
			req.Changes = append(req.Changes, FileChange{Path: e.path, Delete: true})
			return
		}
		content, err := w.blobContent(e.blob)
		if err != nil && diffErr == nil {
			diffErr = err
		}
		req.Changes = append(req.Changes, FileChange{Path: e.path, Content: content})
	}
	if err := treeDiff(w.store, parentTree, c.TreeHash, "", collect, nil); err != nil {
		return req, fmt.Errorf("gitstore: changes of %s: %w", c.Hash, err)
	}
	return req, diffErr
}

func (w *Writer) blobContent(h plumbing.Hash) ([]byte, error) {
	blob, err := object.GetBlob(w.store, h)
	if err != nil {
		return nil, fmt.Errorf("gitstore: read blob %s: %w", h, err)
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("gitstore: read blob %s: %w", h, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("gitstore: read blob %s: %w", h, err)
	}
	return b, nil
}
