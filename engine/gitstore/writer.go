package gitstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

const (
	remoteName = "origin"
	// defaultMaxPushAttempts bounds fetch-replay-push rounds when humans
	// keep pushing to the branch while we try to push.
	defaultMaxPushAttempts = 5
	// packWindow is the delta search window for pushed packs (git's default).
	packWindow = 10
	// largePushObjects is the number of objects above which a push sends
	// its pack without delta search. The search holds every object's
	// content and a delta index per window slot: for a first snapshot of
	// 20,000 ConfigMaps it was about 20 MB of the manager's peak RSS and a
	// second of CPU, for a smaller pack. A commit of everyday
	// size (a burst, a reconcile of a few hundred changes) keeps it.
	largePushObjects = 5000
)

// pushWindow is the delta search window for a push of n objects.
func pushWindow(n int) uint {
	if n > largePushObjects {
		return 0
	}
	return packWindow
}

// ErrNoChange is returned by Commit when the changes leave the tree exactly
// as it is at the branch head; no commit is created.
var ErrNoChange = errors.New("changes leave the tree unchanged")

// ErrPushRejected is returned by Push when the remote still refuses the
// branch update after the bounded number of fetch-and-replay rounds, or
// refuses it for a reason a replay cannot fix (e.g. a protected branch).
var ErrPushRejected = errors.New("push rejected by remote")

// Signature is a person in a commit: the author (a Kubernetes user mapped
// to a name and e-mail) or the committer (the operator).
type Signature struct {
	// Name is the display name; it must not be empty.
	Name string
	// Email is the e-mail address; it may be empty.
	Email string
}

func (s Signature) validate(role string) error {
	if strings.TrimSpace(s.Name) == "" {
		return fmt.Errorf("%s name is empty", role)
	}
	// These bytes would corrupt the commit header (or forge other headers).
	if strings.ContainsAny(s.Name, "<>\n\x00") || strings.ContainsAny(s.Email, "<>\n\x00") {
		return fmt.Errorf("%s %q contains one of '<', '>', newline or NUL", role, s.Name)
	}
	return nil
}

func (s Signature) at(t time.Time) object.Signature {
	return object.Signature{Name: s.Name, Email: s.Email, When: t}
}

// Config configures a Writer for one repository and branch.
type Config struct {
	// URL of the remote repository (https://, ssh://, scp-like, file:// or
	// a local path).
	URL string
	// Branch to write, e.g. "main".
	Branch string
	// Auth authenticates fetch and push; nil for none.
	Auth transport.AuthMethod
	// Dir holds the local bare clone; it is created if missing and reused
	// (with any unpushed commits) if it already holds a repository. Empty
	// keeps the clone in memory.
	Dir string
	// Committer is the identity that commits: the operator.
	Committer Signature
	// MaxPushAttempts bounds fetch-replay-push rounds in Push; 0 means 5.
	MaxPushAttempts int
	// Signer signs every commit the Writer creates, replayed ones
	// included; nil leaves commits unsigned.
	Signer Signer
	// Timeout bounds every network exchange (Open's sync, Pull, Push) whose
	// context has no earlier deadline; 0 means DefaultTimeout.
	Timeout time.Duration
}

// FileChange is the desired state of one file: its full content, or absent.
type FileChange struct {
	// Path is relative to the repository root, slash separated.
	Path string
	// Content is the file's complete new content (ignored for Delete).
	Content []byte
	// Delete removes the file; directories left empty disappear with it.
	Delete bool
}

// CommitRequest describes one commit.
type CommitRequest struct {
	// Author is who made the change in the cluster.
	Author Signature
	// Message is the commit message; a trailing newline is added if missing.
	Message string
	// When is the author time; zero means now.
	When time.Time
	// Changes are applied in order; a later change of a path wins.
	Changes []FileChange
}

// SyncResult reports what Push or Pull did.
type SyncResult struct {
	// Head is the local branch head afterwards.
	Head plumbing.Hash
	// Pushed is the number of commits the remote accepted.
	Pushed int
	// Replayed is the number of our commits rewritten onto a new remote
	// head (commits whose changes the remote already had are dropped and
	// not counted).
	Replayed int
	// Attempts is the number of push attempts (0 for Pull).
	Attempts int
}

// Writer writes commits to one branch of one repository through a local
// clone and pushes them without ever force-pushing. It is safe for
// concurrent use; calls are serialised.
type Writer struct {
	mu       sync.Mutex
	cfg      Config
	repo     *git.Repository
	store    storage.Storer
	branch   plumbing.ReferenceName
	tracking plumbing.ReferenceName
	// remote is the URL for messages, without any password.
	remote string
}

// Open prepares the local clone for cfg and synchronises it with the remote
// as Pull does. A remote that is empty or lacks the branch is fine: the first
// commit then becomes a root commit.
func Open(ctx context.Context, cfg Config) (*Writer, error) {
	w, err := OpenLocal(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	if _, err := w.sync(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("gitstore: initial sync with %s: %w", w.remote, err)
	}
	return w, nil
}

// OpenLocal prepares the local clone for cfg without any network call:
// commits can be made while the remote is down, and the first Pull or Push
// brings them on top of the remote head (a fresh clone's commits are then
// replayed onto it).
func OpenLocal(cfg Config) (*Writer, error) {
	if cfg.URL == "" {
		return nil, errors.New("gitstore: remote URL is empty")
	}
	branch := plumbing.NewBranchReferenceName(cfg.Branch)
	if cfg.Branch == "" || branch.Validate() != nil {
		return nil, fmt.Errorf("gitstore: invalid branch name %q", cfg.Branch)
	}
	if err := cfg.Committer.validate("committer"); err != nil {
		return nil, fmt.Errorf("gitstore: %w", err)
	}
	if cfg.MaxPushAttempts <= 0 {
		cfg.MaxPushAttempts = defaultMaxPushAttempts
	}

	repo, store, err := openRepository(cfg.Dir)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		cfg:      cfg,
		repo:     repo,
		store:    store,
		branch:   branch,
		tracking: plumbing.NewRemoteReferenceName(remoteName, cfg.Branch),
		remote:   RedactURL(cfg.URL),
	}
	if err := w.configureRemote(); err != nil {
		_ = w.Close()
		return nil, err
	}
	return w, nil
}

// openPacks bounds the packfiles a clone keeps open.
const openPacks = maxPacks + 16

func openRepository(dir string) (*git.Repository, storage.Storer, error) {
	if dir == "" {
		st := memory.NewStorage()
		repo, err := git.Init(st, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("gitstore: init in-memory repository: %w", err)
		}
		return repo, st, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("gitstore: create %s: %w", dir, err)
	}
	// ExclusiveAccess: only this process writes the clone. go-git then
	// lists the loose objects and packs once and answers "is it loose?"
	// from that list instead of an lstat of each path component per object
	// read; a push reads every object it sends (that was 5-7 % of the
	// manager's CPU in make bench-e2e). The list is made again after a
	// loose write, which was costly when every commit wrote loose objects;
	// commits and fetches now write packfiles (pack.go), which only
	// refresh the list of packs.
	// MaxOpenDescriptors keeps up to openPacks packfiles open instead of
	// opening (an lstat per path component, open, close) the pack for
	// every object read; more than maxPacks, so all usually stay open (a
	// file descriptor each, per target). A pack a
	// merge deleted is closed when its slot is reused or at Close.
	st := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
		filesystem.Options{ExclusiveAccess: true, MaxOpenDescriptors: openPacks})
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		repo, err := git.Open(st, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("gitstore: open repository in %s: %w", dir, err)
		}
		return repo, st, nil
	}
	repo, err := git.Init(st, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("gitstore: init repository in %s: %w", dir, err)
	}
	return repo, st, nil
}

func (w *Writer) configureRemote() error {
	cfg, err := w.repo.Config()
	if err != nil {
		return fmt.Errorf("gitstore: read repository config: %w", err)
	}
	cfg.Remotes[remoteName] = &config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{w.remote}, // no password on disk; fetch and push use cfg.URL
		Fetch: []config.RefSpec{w.fetchSpec()},
	}
	if err := w.repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("gitstore: write repository config: %w", err)
	}
	// HEAD names our branch so that the git CLI shows it when debugging.
	if err := w.store.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, w.branch)); err != nil {
		return fmt.Errorf("gitstore: set HEAD: %w", err)
	}
	return nil
}

func (w *Writer) fetchSpec() config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+%s:%s", w.branch, w.tracking))
}

// Close releases the local clone's resources. The Writer must not be used
// afterwards.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.store.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("gitstore: close storage: %w", err)
		}
	}
	return nil
}

// Head returns the local branch head (zero hash if the branch has no
// commit yet).
func (w *Writer) Head() (plumbing.Hash, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ref(w.branch)
}

// Unpushed returns how many local commits the remote does not have yet, as
// far as the last fetch or push knows.
func (w *Writer) Unpushed() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	local, err := w.ref(w.branch)
	if err != nil {
		return 0, err
	}
	base, err := w.ref(w.tracking)
	if err != nil {
		return 0, err
	}
	commits, _, err := w.pendingCommits(local, base)
	if err != nil {
		return 0, err
	}
	return len(commits), nil
}

// ReadFile returns the content of the file at path at the branch head, and
// false if there is no such file.
func (w *Writer) ReadFile(p string) ([]byte, bool, error) {
	cleaned, err := CleanPath(p)
	if err != nil {
		return nil, false, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	root, err := w.headTree()
	if err != nil {
		return nil, false, err
	}
	e, ok, err := lookup(w.store, root, cleaned)
	if err != nil || !ok || !isFileMode(e.Mode) {
		return nil, false, err
	}
	blob, err := object.GetBlob(w.store, e.Hash)
	if err != nil {
		return nil, false, fmt.Errorf("gitstore: read blob of %q: %w", cleaned, err)
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, false, fmt.Errorf("gitstore: read blob of %q: %w", cleaned, err)
	}
	defer r.Close()
	content, err := io.ReadAll(r)
	if err != nil {
		return nil, false, fmt.Errorf("gitstore: read blob of %q: %w", cleaned, err)
	}
	return content, true, nil
}

// ListFiles returns the files at the branch head below prefix (a directory
// or a single file; "" lists the whole repository), in Git's tree order.
// Only the subtree under prefix is read.
func (w *Writer) ListFiles(prefix string) ([]FileInfo, error) {
	cleaned := ""
	if prefix != "" && prefix != "." {
		var err error
		if cleaned, err = CleanPath(prefix); err != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	root, err := w.headTree()
	if err != nil {
		return nil, err
	}
	e, ok, err := lookup(w.store, root, cleaned)
	if err != nil || !ok {
		return nil, err
	}
	if isFileMode(e.Mode) {
		return []FileInfo{{Path: cleaned, Hash: e.Hash}}, nil
	}
	if e.Mode != filemode.Dir {
		return nil, nil // a submodule
	}
	files, err := walkFiles(w.store, e.Hash, cleaned, nil)
	if err != nil {
		return nil, fmt.Errorf("gitstore: list %q: %w", cleaned, err)
	}
	return files, nil
}

// Commit records the changes as one commit on the local branch and returns
// its hash. Only the trees along the changed paths are rewritten. If the
// resulting tree equals the head's, no commit is made and ErrNoChange is
// returned. Commit does not push.
func (w *Writer) Commit(ctx context.Context, req CommitRequest) (plumbing.Hash, error) {
	if err := ctx.Err(); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := req.Author.validate("author"); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitstore: %w", err)
	}
	if strings.TrimSpace(req.Message) == "" {
		return plumbing.ZeroHash, errors.New("gitstore: commit message is empty")
	}
	edits := make([]edit, 0, len(req.Changes))
	for _, c := range req.Changes {
		p, err := CleanPath(c.Path)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("gitstore: %w", err)
		}
		if c.Delete {
			edits = append(edits, edit{path: p, delete: true})
			continue
		}
		content := c.Content
		if content == nil {
			content = []byte{}
		}
		edits = append(edits, edit{path: p, blob: BlobHash(content), content: content})
	}
	when := req.When
	if when.IsZero() {
		when = time.Now()
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	head, err := w.ref(w.branch)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	parentTree, err := w.treeOf(head)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	buf := newObjectBuffer(w.store, w.cfg.Dir)
	tree, changed, err := treeEditor{s: buf}.apply(parentTree, edits)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitstore: build tree: %w", err)
	}
	if !changed {
		return plumbing.ZeroHash, ErrNoChange
	}
	h, err := w.writeCommit(buf, tree, head, req.Author.at(when), req.Message)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if err := buf.flush(); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.setRef(w.branch, h); err != nil {
		return plumbing.ZeroHash, err
	}
	return h, nil
}

// Pull fetches the branch. Without unpushed commits the local branch moves
// to the remote head; with unpushed commits they are replayed on top of it.
func (w *Writer) Pull(ctx context.Context) (SyncResult, error) {
	ctx, cancel := withTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	res, err := w.sync(ctx)
	if err != nil {
		return res, fmt.Errorf("gitstore: pull: %w", err)
	}
	return res, nil
}

// Push sends unpushed commits to the remote branch. If someone else pushed
// in the meantime, it fetches, replays our unpushed commits on top of the new
// remote head (last write wins for the files they touch, every other commit
// and file is kept) and tries again, at most MaxPushAttempts times. It never
// force-pushes: the remote only accepts an update from the head we fetched.
func (w *Writer) Push(ctx context.Context) (SyncResult, error) {
	ctx, cancel := withTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	var res SyncResult
	for attempt := 1; attempt <= w.cfg.MaxPushAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		local, err := w.ref(w.branch)
		if err != nil {
			return res, err
		}
		base, err := w.ref(w.tracking)
		if err != nil {
			return res, err
		}
		res.Head = local
		if local.IsZero() || local == base {
			return res, nil
		}
		res.Attempts = attempt
		commits, found, err := w.pendingCommits(local, base)
		if err != nil {
			return res, err
		}
		var rejection error
		if !found && !base.IsZero() {
			// Our branch does not descend from the remote head we know:
			// treat it like a moved remote and replay.
			rejection = errors.New("local branch does not descend from the remote head")
		} else {
			rejection, err = w.sendPack(ctx, base, local, commits)
			if err != nil {
				return res, fmt.Errorf("gitstore: push to %s: %w", w.remote, scrub(err, authSecrets(w.cfg.Auth)...))
			}
			if rejection == nil {
				if err := w.setRef(w.tracking, local); err != nil {
					return res, err
				}
				res.Pushed += len(commits)
				return res, nil
			}
		}
		s, err := w.sync(ctx)
		res.Replayed += s.Replayed
		res.Head = s.Head
		if err != nil {
			return res, fmt.Errorf("gitstore: push to %s: after rejection (%v): %w", w.remote, rejection, err)
		}
		after, err := w.ref(w.tracking)
		if err != nil {
			return res, err
		}
		if after == base && found {
			// The remote did not move, yet refused: a replay cannot help.
			return res, fmt.Errorf("gitstore: %w: %s: %v", ErrPushRejected, w.remote, rejection)
		}
	}
	return res, fmt.Errorf("gitstore: %w: %s: remote kept moving during %d attempts", ErrPushRejected, w.remote, w.cfg.MaxPushAttempts)
}

// sync fetches the branch and brings the local branch on top of the remote
// head: fast-forward without unpushed commits, replay with them. A remote
// without the branch leaves the local branch as it is (the next push
// creates it).
func (w *Writer) sync(ctx context.Context) (SyncResult, error) {
	oldBase, err := w.ref(w.tracking)
	if err != nil {
		return SyncResult{}, err
	}
	remote, err := w.fetch(ctx)
	if err != nil {
		return SyncResult{}, err
	}
	local, err := w.ref(w.branch)
	if err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Head: local}
	if local == remote || remote.IsZero() {
		return res, nil
	}
	if local.IsZero() {
		res.Head = remote
		return res, w.setRef(w.branch, remote)
	}
	commits, stop, found, err := w.walkPending(local, oldBase, remote)
	if err != nil {
		return res, err
	}
	switch {
	case found && stop == remote:
		return res, nil // already on top of the remote head
	case !found && !oldBase.IsZero():
		// The last remote head we knew is not in our history (e.g. the
		// clone directory was tampered with): fall back to the merge base.
		commits, err = w.commitsSinceMergeBase(local, remote)
		if err != nil {
			return res, err
		}
	}
	// Otherwise commits are those above the last known remote head, or, if
	// the remote was empty when we started, all of ours.
	if len(commits) == 0 {
		res.Head = remote
		return res, w.setRef(w.branch, remote)
	}
	head, replayed, err := w.replay(remote, commits)
	if err != nil {
		return res, err
	}
	res.Head, res.Replayed = head, replayed
	return res, w.setRef(w.branch, head)
}

// fetch updates the remote-tracking ref and returns the remote head (zero
// if the remote is empty or has no such branch).
func (w *Writer) fetch(ctx context.Context) (plumbing.Hash, error) {
	err := w.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RemoteURL:  w.cfg.URL,
		RefSpecs:   []config.RefSpec{w.fetchSpec()},
		Auth:       w.cfg.Auth,
		Tags:       git.NoTags,
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return w.ref(w.tracking)
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.Is(err, git.NoMatchingRefSpecError{}):
		if err := w.setRef(w.tracking, plumbing.ZeroHash); err != nil {
			return plumbing.ZeroHash, err
		}
		return plumbing.ZeroHash, nil
	default:
		return plumbing.ZeroHash, fmt.Errorf("fetch %s from %s: %w", w.cfg.Branch, w.remote, scrub(err, authSecrets(w.cfg.Auth)...))
	}
}

// pendingCommits returns the commits from local back to (excluding) base,
// oldest first, and whether base was reached (a zero base is reached at the
// root).
func (w *Writer) pendingCommits(local, base plumbing.Hash) ([]*object.Commit, bool, error) {
	commits, _, found, err := w.walkPending(local, base)
	if base.IsZero() {
		found = true
	}
	return commits, found, err
}

// walkPending follows first parents from local until it meets one of stops
// (zero hashes are ignored) or the root. It returns the commits passed,
// oldest first, and which stop was met.
func (w *Writer) walkPending(local plumbing.Hash, stops ...plumbing.Hash) ([]*object.Commit, plumbing.Hash, bool, error) {
	var commits []*object.Commit
	h := local
	for !h.IsZero() {
		for _, s := range stops {
			if !s.IsZero() && h == s {
				reverse(commits)
				return commits, s, true, nil
			}
		}
		c, err := object.GetCommit(w.store, h)
		if err != nil {
			return nil, plumbing.ZeroHash, false, fmt.Errorf("gitstore: read commit %s: %w", h, err)
		}
		commits = append(commits, c)
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	reverse(commits)
	return commits, plumbing.ZeroHash, false, nil
}

func (w *Writer) commitsSinceMergeBase(local, remote plumbing.Hash) ([]*object.Commit, error) {
	lc, err := object.GetCommit(w.store, local)
	if err != nil {
		return nil, fmt.Errorf("gitstore: read commit %s: %w", local, err)
	}
	rc, err := object.GetCommit(w.store, remote)
	if err != nil {
		return nil, fmt.Errorf("gitstore: read commit %s: %w", remote, err)
	}
	bases, err := lc.MergeBase(rc)
	if err != nil {
		return nil, fmt.Errorf("gitstore: merge base of %s and %s: %w", local, remote, err)
	}
	var stop plumbing.Hash
	if len(bases) > 0 {
		stop = bases[0].Hash
	}
	commits, _, _, err := w.walkPending(local, stop)
	return commits, err
}

func reverse(cs []*object.Commit) {
	for i, j := 0, len(cs)-1; i < j; i, j = i+1, j-1 {
		cs[i], cs[j] = cs[j], cs[i]
	}
}

// replay re-applies each commit's file states onto onto, keeping author and
// message. A commit whose changes onto already has is dropped. It returns
// the new head and the number of commits written.
func (w *Writer) replay(onto plumbing.Hash, commits []*object.Commit) (plumbing.Hash, int, error) {
	head := onto
	tree, err := w.treeOf(head)
	if err != nil {
		return plumbing.ZeroHash, 0, err
	}
	written := 0
	buf := newObjectBuffer(w.store, w.cfg.Dir)
	for _, c := range commits {
		var parentTree plumbing.Hash
		if len(c.ParentHashes) > 0 {
			if parentTree, err = w.treeOf(c.ParentHashes[0]); err != nil {
				return plumbing.ZeroHash, 0, err
			}
		}
		var edits []edit
		collect := func(e edit) { edits = append(edits, e) }
		if err := treeDiff(w.store, parentTree, c.TreeHash, "", collect, nil); err != nil {
			return plumbing.ZeroHash, 0, fmt.Errorf("gitstore: replay %s: %w", c.Hash, err)
		}
		newTree, changed, err := treeEditor{s: buf}.apply(tree, edits)
		if err != nil {
			return plumbing.ZeroHash, 0, fmt.Errorf("gitstore: replay %s onto %s: %w", c.Hash, head, err)
		}
		if !changed {
			continue
		}
		h, err := w.writeCommit(buf, newTree, head, c.Author, c.Message)
		if err != nil {
			return plumbing.ZeroHash, 0, err
		}
		head, tree = h, newTree
		written++
	}
	if err := buf.flush(); err != nil {
		return plumbing.ZeroHash, 0, err
	}
	return head, written, nil
}

// sendPack pushes local over base with a pack of exactly the objects our
// pending commits introduced, so the cost follows the change (go-git's own
// Push walks everything reachable from the remote head). It returns a
// non-nil rejection if the remote head is not base any more or the remote
// refused the update; err is for transport failures.
func (w *Writer) sendPack(ctx context.Context, base, local plumbing.Hash, commits []*object.Commit) (rejection, err error) {
	ep, err := transport.NewEndpoint(w.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	sess, err := cl.NewReceivePackSession(ep, w.cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("open receive-pack session: %w", err)
	}
	defer func() {
		if cerr := sess.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close receive-pack session: %w", cerr)
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read advertised references: %w", err)
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return nil, fmt.Errorf("read advertised references: %w", err)
	}
	var current plumbing.Hash
	if r, rerr := refs.Reference(w.branch); rerr == nil {
		current = r.Hash()
	}
	if current != base {
		return fmt.Errorf("remote %s is at %s, expected %s", w.branch, current, base), nil
	}

	hashes, err := w.objectsOf(commits)
	if err != nil {
		return nil, err
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	req.Commands = []*packp.Command{{Name: w.branch, Old: base, New: local}}
	pr, pw := io.Pipe()
	req.Packfile = pr
	encoded := make(chan error, 1)
	go func() {
		enc := packfile.NewEncoder(pw, w.store, !ar.Capabilities.Supports(capability.OFSDelta))
		_, eerr := enc.Encode(hashes, pushWindow(len(hashes)))
		encoded <- eerr
		_ = pw.CloseWithError(eerr)
	}()
	status, err := sess.ReceivePack(ctx, req)
	if err != nil {
		_ = pr.CloseWithError(err)
	}
	eerr := <-encoded
	// A report status that refuses our ref is a rejection, not a transport
	// failure: the caller fetches and decides whether a replay helps.
	if status != nil {
		if serr := status.Error(); serr != nil {
			return serr, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("send pack: %w", err)
	}
	if eerr != nil {
		return nil, fmt.Errorf("encode pack: %w", eerr)
	}
	return nil, nil
}

// objectsOf lists the objects the commits introduce relative to their first
// parents: the commits, the trees along changed paths and the new blobs.
func (w *Writer) objectsOf(commits []*object.Commit) ([]plumbing.Hash, error) {
	seen := make(map[plumbing.Hash]bool)
	var hashes []plumbing.Hash
	add := func(h plumbing.Hash) {
		if !seen[h] {
			seen[h] = true
			hashes = append(hashes, h)
		}
	}
	for _, c := range commits {
		add(c.Hash)
		var parentTree plumbing.Hash
		if len(c.ParentHashes) > 0 {
			var err error
			if parentTree, err = w.treeOf(c.ParentHashes[0]); err != nil {
				return nil, err
			}
		}
		if err := treeDiff(w.store, parentTree, c.TreeHash, "", nil, add); err != nil {
			return nil, fmt.Errorf("objects of %s: %w", c.Hash, err)
		}
	}
	return hashes, nil
}

// writeCommit encodes the commit into s (the commit's object buffer).
func (w *Writer) writeCommit(s storer.EncodedObjectStorer, tree, parent plumbing.Hash, author object.Signature, message string) (plumbing.Hash, error) {
	if !strings.HasSuffix(message, "\n") {
		message += "\n"
	}
	c := &object.Commit{
		Author:    author,
		Committer: w.cfg.Committer.at(time.Now()),
		Message:   message,
		TreeHash:  tree,
	}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	if w.cfg.Signer != nil {
		if err := signCommit(w.cfg.Signer, c); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("gitstore: %w", err)
		}
	}
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitstore: encode commit: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitstore: store commit: %w", err)
	}
	return h, nil
}

func (w *Writer) ref(name plumbing.ReferenceName) (plumbing.Hash, error) {
	r, err := w.store.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitstore: read %s: %w", name, err)
	}
	return r.Hash(), nil
}

func (w *Writer) setRef(name plumbing.ReferenceName, h plumbing.Hash) error {
	var err error
	if h.IsZero() {
		err = w.store.RemoveReference(name)
	} else {
		err = w.store.SetReference(plumbing.NewHashReference(name, h))
	}
	if err != nil {
		return fmt.Errorf("gitstore: update %s: %w", name, err)
	}
	return nil
}

// treeOf returns the root tree of commit h (zero for the zero commit).
func (w *Writer) treeOf(h plumbing.Hash) (plumbing.Hash, error) {
	if h.IsZero() {
		return plumbing.ZeroHash, nil
	}
	c, err := object.GetCommit(w.store, h)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitstore: read commit %s: %w", h, err)
	}
	return c.TreeHash, nil
}

func (w *Writer) headTree() (plumbing.Hash, error) {
	head, err := w.ref(w.branch)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return w.treeOf(head)
}
