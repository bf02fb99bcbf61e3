package batch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// target is one GitTarget's local clone, journal, author sessions and push
// timeline. Only its worker's goroutine uses it; the writer's network calls
// run on a helper goroutine while netBusy, and nothing else calls the
// writer then (except a snapshot job, which the writer's lock serialises).
type target struct {
	key     types.NamespacedName
	spec    v1alpha1.GitTargetSpec
	creds   gitstore.Credentials
	dir     string
	writer  *gitstore.Writer
	journal *journal
	log     logr.Logger

	sessions *sessions
	// pending are closed sessions not yet committed, in the order they
	// closed: a session that failed to commit stays first and blocks the
	// ones behind it, so history keeps the order of writes.
	pending []*session

	unpushed int
	firstUnp time.Time
	lastSync time.Time
	// synced is set once a pull or push succeeded with this clone.
	synced bool
	// needPull asks for a fetch before the next commit retry (a human may
	// have removed what blocked it).
	needPull bool
	netBusy  bool
	// netStarted is when the running network call started.
	netStarted time.Time
	// reopen asks to read the GitTarget again when the network is idle:
	// its spec or Secret changed, or the remote failed (maybe the URL is
	// being fixed).
	reopen bool

	commitErr     error
	commitFails   int
	commitRetryAt time.Time
	netErr        error
	netFails      int
	netRetryAt    time.Time

	// placed is the path each rule last wrote each object to, holders how
	// many placements point at a path (see place).
	placed  map[placementKey]string
	holders map[string]int

	// seal is the encryption state (encrypt.go).
	seal sealState
	// riders are the committed changes not yet pushed (telemetry.go).
	riders []rider

	// reconcilePush is set by a reconcile's commit: the next push sends
	// it (every blob of a first reconcile), under tightGC.
	reconcilePush bool
}

// targetDir is where a target keeps its clones and journal.
func targetDir(workDir string, key types.NamespacedName) string {
	return filepath.Join(workDir, key.Namespace, key.Name)
}

// cloneDir is the clone of one URL and branch: a target whose URL or
// branch changes starts from a fresh clone, never from the old
// repository's history.
func cloneDir(workDir string, key types.NamespacedName, url, branch string) string {
	sum := sha256.Sum256([]byte(url + "\n" + branch))
	return filepath.Join(targetDir(workDir, key), "clone-"+hex.EncodeToString(sum[:8]))
}

func journalPath(workDir string, key types.NamespacedName) string {
	return filepath.Join(targetDir(workDir, key), "journal")
}

func (b *Batcher) limitsOf(spec v1alpha1.GitTargetSpec) Limits {
	return Limits{
		Idle:       durationOr(spec.Batching.IdleTimeout.Duration, 5*time.Second),
		MaxChanges: intOr(int(spec.Batching.MaxChanges), 100),
		MaxAge:     durationOr(spec.Batching.MaxAge.Duration, time.Minute),
	}
}

// openTarget opens the target's clone for its current URL and branch
// without any network call, moves commits that older clones of the
// target (another URL or branch) never pushed into it, and replays the
// journal into sessions waiting to be committed.
func (b *Batcher) openTarget(gt *v1alpha1.GitTarget, creds gitstore.Credentials, key types.NamespacedName) (*target, error) {
	t := &target{key: key, log: b.opts.Log.WithValues("target", key.String()), sessions: newSessions(b.limitsOf(gt.Spec))}
	if err := b.openWriter(t, gt, creds); err != nil {
		return nil, err
	}
	j, recs, err := openJournal(journalPath(b.opts.WorkDir, key))
	if err != nil {
		_ = t.writer.Close()
		return nil, fmt.Errorf("journal of GitTarget %s: %w", key, err)
	}
	t.journal = j
	t.pending = replaySessions(recs)
	for _, s := range t.pending {
		if s.id > t.sessions.nextID {
			t.sessions.nextID = s.id
		}
	}
	if len(recs) > 0 {
		replayedChanges.Add(float64(len(recs)))
		t.log.Info("replaying the journal left by the last run", "sessions", len(t.pending), "files", len(recs))
	}
	return t, nil
}

// openWriter (re)opens t's writer for gt's URL and branch.
func (b *Batcher) openWriter(t *target, gt *v1alpha1.GitTarget, creds gitstore.Credentials) error {
	spec := gt.Spec
	dir := cloneDir(b.opts.WorkDir, t.key, spec.URL, spec.Branch)
	w, err := gitstore.OpenLocal(gitstore.Config{
		URL:       spec.URL,
		Branch:    spec.Branch,
		Auth:      creds.Auth,
		Signer:    creds.Signer,
		Dir:       dir,
		Committer: gitstore.Signature{Name: spec.Commit.CommitterName, Email: spec.Commit.CommitterEmail},
		Timeout:   b.opts.NetworkTimeout,
	})
	if err != nil {
		return fmt.Errorf("opening the clone of GitTarget %s: %w", t.key, err)
	}
	if t.writer != nil {
		_ = t.writer.Close()
	}
	moved := dir != t.dir
	t.writer, t.dir, t.spec, t.creds = w, dir, spec, creds
	t.sessions.limits = b.limitsOf(spec)
	if moved {
		t.synced = false
		t.placed, t.holders = nil, nil
		b.adoptOldClones(t)
	}
	n, err := w.Unpushed()
	if err != nil {
		return fmt.Errorf("counting unpushed commits of GitTarget %s: %w", t.key, err)
	}
	t.unpushed = n
	if n > 0 {
		t.firstUnp = time.Now()
	}
	return nil
}

// adoptOldClones commits, in t's clone, what other clones of the target
// (an earlier URL or branch) never pushed, and removes those clones.
func (b *Batcher) adoptOldClones(t *target) {
	entries, err := os.ReadDir(targetDir(b.opts.WorkDir, t.key))
	if err != nil {
		return
	}
	for _, e := range entries {
		old := filepath.Join(targetDir(b.opts.WorkDir, t.key), e.Name())
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "clone-") || old == t.dir {
			continue
		}
		reqs, err := gitstore.PendingInDir(old)
		if err != nil {
			t.log.Error(err, "reading the unpushed commits of an old clone; it is kept", "dir", e.Name())
			continue
		}
		ok := true
		for _, req := range reqs {
			if _, err := t.writer.Commit(context.Background(), req); err != nil && !errors.Is(err, gitstore.ErrNoChange) {
				t.log.Error(err, "moving an unpushed commit to the new clone; the old clone is kept", "dir", e.Name())
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if len(reqs) > 0 {
			t.log.Info("moved unpushed commits of the previous URL or branch to the new clone", "commits", len(reqs))
		}
		if err := os.RemoveAll(old); err != nil {
			t.log.Error(err, "removing an old clone", "dir", e.Name())
		}
	}
}

// placementKey identifies what one rule writes for one object.
type placementKey struct {
	rule      rules.Key
	resource  schema.GroupVersionResource
	namespace string
	name      string
}

func placementOf(r *rules.Rule, c change.Change) placementKey {
	return placementKey{rule: r.Key, resource: c.Resource, namespace: c.Namespace, name: c.Name}
}

// place records where f puts its object and returns the object's previous
// path when the layout moved it there and no other rule's object still
// lives at it (two rules may write one object to one path); "" otherwise.
// It knows what this process wrote: a move across a restart leaves the
// old file.
func (t *target) place(k placementKey, f fileChange) (moved string) {
	if t.placed == nil {
		t.placed, t.holders = map[placementKey]string{}, map[string]int{}
	}
	old, had := t.placed[k]
	if had && old == f.path && !f.delete {
		return ""
	}
	if had {
		delete(t.placed, k)
		if t.holders[old]--; t.holders[old] <= 0 {
			delete(t.holders, old)
			if old != f.path {
				moved = old
			}
		}
	}
	if !f.delete {
		t.placed[k] = f.path
		t.holders[f.path]++
	}
	return moved
}

// add puts one rule's file change of a change into its author's session
// and journals it.
func (t *target) add(k placementKey, u change.User, f fileChange, now time.Time) {
	if old := t.place(k, f); old != "" {
		// The layout moved the object: its old file goes in the same
		// commit, so the repository never holds it twice.
		t.addFile(u, fileChange{path: old, delete: true, movedFrom: true}, now)
	}
	t.addFile(u, f, now)
}

func (t *target) addFile(u change.User, f fileChange, now time.Time) {
	into, closed := t.sessions.addTo(u, f, now)
	t.pending = append(t.pending, closed...)
	rec := journalRecord{Session: into.id, User: u, Path: f.path, Content: f.content, Delete: f.delete,
		MovedFrom: f.movedFrom, When: now.UnixNano()}
	if !f.movedFrom {
		rec.Changes = []string{f.summary}
		if f.why != "" {
			rec.Whys = []string{f.why}
		}
	}
	if err := t.journal.append(rec); err != nil {
		t.log.Error(err, "journaling a change; it is kept in memory")
	}
	journaledChanges.Inc()
}

// commit queues s to be committed and commits what is due. Open sessions
// and snapshot jobs use it.
func (t *target) commit(ctx context.Context, s *session, _ logr.Logger) {
	t.pending = append(t.pending, s)
	t.commitPending(ctx, time.Now(), true)
}

// commitPending commits closed sessions in order. A session that fails
// stays first with its changes, the target's status names the error, and
// it is retried with backoff after a fetch (force skips the backoff).
func (t *target) commitPending(ctx context.Context, now time.Time, force bool) {
	committed := 0
	for len(t.pending) > 0 {
		// A retry waits for its backoff and for the fetch that may bring
		// what unblocks it (unless fetching fails too).
		if !force && (now.Before(t.commitRetryAt) || (t.needPull && t.netFails == 0)) {
			break
		}
		if err := t.commitSession(ctx, t.pending[0]); err != nil {
			commitErrors.Inc()
			t.commitFails++
			t.commitErr = fmt.Errorf("committing %d change(s) by %s: %w", len(t.pending[0].changes), t.pending[0].author.Escaped(), err)
			t.commitRetryAt = now.Add(backoff(t.commitFails, time.Second, time.Minute))
			t.needPull = true
			t.log.Error(err, "committing an author session; it is kept and retried", "author", t.pending[0].author.Username,
				"attempt", t.commitFails, "retryAt", t.commitRetryAt)
			break
		}
		t.pending = t.pending[1:]
		committed++
		t.commitFails, t.commitErr = 0, nil
	}
	if committed > 0 {
		t.compactJournal()
	}
}

// compactJournal rewrites the journal with the sessions not yet committed.
func (t *target) compactJournal() {
	var recs []journalRecord
	for _, s := range t.pending {
		recs = append(recs, s.records()...)
	}
	for _, s := range t.sessions.open() {
		recs = append(recs, s.records()...)
	}
	if err := t.journal.rewrite(recs); err != nil {
		t.log.Error(err, "compacting the journal")
	}
}

func (t *target) commitSession(ctx context.Context, s *session) error {
	req := gitstore.CommitRequest{
		Author:  authorOf(s.author, t.spec.Commit),
		Message: message(s, t.key),
		When:    s.last,
	}
	for _, p := range s.order {
		f := s.files[p]
		req.Changes = append(req.Changes, gitstore.FileChange{Path: f.path, Content: f.content, Delete: f.delete})
	}
	start := time.Now()
	h, err := t.writer.Commit(ctx, req)
	switch {
	case errors.Is(err, gitstore.ErrNoChange):
		return nil
	case err != nil:
		return err
	}
	commits.Inc()
	t.committed(s, h.String(), start, time.Now())
	t.log.V(1).Info("committed", "author", s.author.Username, "commit", h.String(), "files", len(req.Changes))
	if t.unpushed == 0 {
		t.firstUnp = time.Now()
	}
	t.unpushed++
	return nil
}

// backlog counts the changes in sessions not yet committed.
func (t *target) backlog() int {
	n := 0
	for _, s := range t.pending {
		n += len(s.files)
	}
	for _, s := range t.sessions.byAuthor {
		n += len(s.files)
	}
	return n
}

// backoff is base·2^(attempt-1), at most max.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

var unsafeEmail = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// authorOf maps a Kubernetes user to a Git author: an AuthorMap entry, else
// the username at the target's e-mail domain.
func authorOf(u change.User, c v1alpha1.CommitSpec) gitstore.Signature {
	name := u.Escaped()
	for _, m := range c.AuthorMap {
		if (!u.IsUnknown() && m.Username == u.Username) || (u.IsUnknown() && m.Username == change.UnknownUsername) {
			return gitstore.Signature{Name: m.Name, Email: m.Email}
		}
	}
	domain := c.AuthorEmailDomain
	if domain == "" {
		domain = "cluster.local"
	}
	local := strings.Trim(unsafeEmail.ReplaceAllString(name, "."), ".")
	if strings.Contains(name, "@") && !strings.ContainsAny(name, "<>\n \"") {
		return gitstore.Signature{Name: name, Email: name}
	}
	return gitstore.Signature{Name: strings.NewReplacer("<", "", ">", "", "\n", " ").Replace(name), Email: local + "@" + domain}
}

// message renders the commit message: a subject, one line per change, and
// trailers that tools can parse (git interpret-trailers).
func message(s *session, key types.NamespacedName) string {
	var b strings.Builder
	if len(s.changes) == 1 {
		b.WriteString(s.changes[0])
	} else {
		fmt.Fprintf(&b, "%d changes by %s", len(s.changes), s.author.Escaped())
	}
	b.WriteString("\n\n")
	if len(s.changes) == 1 && whyAt(s, 0) != "" {
		writeWhy(&b, "", whyAt(s, 0))
		b.WriteString("\n")
	}
	if len(s.changes) > 1 {
		for i, c := range s.changes {
			b.WriteString("- " + c + "\n")
			switch w := whyAt(s, i); {
			case w == "":
			case i > 0 && w == whyAt(s, i-1):
				b.WriteString("  Why: as above\n")
			default:
				writeWhy(&b, "  ", w)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Reverser-User: %s\n", s.author.Escaped())
	if len(s.author.Groups) > 0 {
		groups := s.author.EscapedGroups()
		sort.Strings(groups)
		fmt.Fprintf(&b, "Reverser-Groups: %s\n", strings.Join(groups, ","))
	}
	for _, c := range s.changes {
		op, rest, _ := strings.Cut(c, " ")
		fmt.Fprintf(&b, "Reverser-Operation: %s\nReverser-Resource: %s\n", op, rest)
	}
	fmt.Fprintf(&b, "Reverser-Target: %s\n", key)
	return b.String()
}

// whyAt is the reason given with the session's i-th change, or "".
func whyAt(s *session, i int) string {
	if i < len(s.whys) {
		return s.whys[i]
	}
	return ""
}

// writeWhy writes a reason (change.EscapeWhy's lines joined by "\n") as
// "Why: " and its first line, the others indented below it: no line of a
// user's text starts a line of the message, so none passes for a trailer.
func writeWhy(b *strings.Builder, indent, why string) {
	for i, line := range strings.Split(why, "\n") {
		if i == 0 {
			b.WriteString(indent + "Why: " + line + "\n")
			continue
		}
		b.WriteString(indent + "     " + line + "\n")
	}
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func intOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
