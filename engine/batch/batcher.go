package batch

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// TargetSource resolves a GitTarget and its credentials when a target's
// writer is opened.
type TargetSource interface {
	Target(ctx context.Context, key types.NamespacedName) (*v1alpha1.GitTarget, gitstore.Credentials, error)
}

// Options configure a Batcher.
type Options struct {
	// Targets resolves GitTargets and credentials.
	Targets TargetSource
	// WorkDir holds one local clone per target.
	WorkDir string
	// Tick is how often sessions and push timers are checked; zero
	// means 250ms.
	Tick time.Duration
	// QueueSize bounds the changes waiting to be rendered; zero means
	// 4096. Record blocks (it is called from informer handlers, never from
	// the webhook) when the queue is full.
	QueueSize int
	// Log receives structured logs; never object contents.
	Log logr.Logger
	// Health receives failures of the rules' WASM modules; nil ignores
	// them.
	Health *rules.Health
	// RetryInterval is how often a target that could not be opened (its
	// remote down) is tried again; zero means 5 seconds.
	RetryInterval time.Duration
	// Index, Lister and NamespaceLabels let the batcher reconcile each
	// target (at start, when its rules or spec change and on an interval,
	// see reconcile.go); without Index or Lister there is no reconcile.
	Index *rules.Index
	// Lister lists objects for reconciles.
	Lister ObjectLister
	// NamespaceLabels resolves namespace labels for namespace selectors.
	NamespaceLabels rules.NamespaceLabeler
	// ReconcileInterval is how often each target is reconciled; zero
	// means DefaultReconcileInterval.
	ReconcileInterval time.Duration
	// WatchSynced reports whether the watch's informers have synced; a
	// reconcile lists only after them (nil: at once).
	WatchSynced func() bool
}

// Batcher receives confirmed changes and commits them per target and
// author session. It implements change.Sink.
type Batcher struct {
	opts   Options
	queue  chan change.Change
	forget chan types.NamespacedName

	mu      sync.Mutex
	targets map[types.NamespacedName]*target

	// deferred holds changes of targets that could not be opened; only
	// the Start goroutine touches it.
	deferred  map[types.NamespacedName][]deferredChange
	lastRetry time.Time

	// rec is the reconciles' bookkeeping; started is when Start began.
	rec      reconcileState
	started  time.Time
	breakers breakers
}

// New returns a Batcher; run it with Start.
func New(opts Options) *Batcher {
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 5 * time.Second
	}
	return &Batcher{opts: opts, queue: make(chan change.Change, opts.QueueSize),
		forget: make(chan types.NamespacedName, 64), targets: map[types.NamespacedName]*target{}, breakers: breakers{}}
}

// Record queues a confirmed change.
func (b *Batcher) Record(ctx context.Context, c change.Change) {
	queueDepth.Set(float64(len(b.queue)))
	select {
	case b.queue <- c:
	case <-ctx.Done():
	}
}

// NeedLeaderElection makes the Batcher run on the leader only: one writer
// per repository.
func (b *Batcher) NeedLeaderElection() bool { return true }

// Start runs the batcher until ctx ends, then commits and pushes what it
// holds.
func (b *Batcher) Start(ctx context.Context) error {
	ticker := time.NewTicker(b.opts.Tick)
	defer ticker.Stop()
	var rulesChanged <-chan struct{}
	if b.opts.Index != nil {
		rulesChanged = b.opts.Index.Subscribe()
	}
	b.started = time.Now()
	b.rulesChanged(ctx)
	for {
		select {
		case <-rulesChanged:
			b.rulesChanged(ctx)
		case <-ctx.Done():
			b.flushAll(context.Background())
			return nil
		case c := <-b.queue:
			queueDepth.Set(float64(len(b.queue)))
			b.handle(ctx, c)
		case key := <-b.forget:
			b.forgetNow(ctx, key)
		case now := <-ticker.C:
			b.tick(ctx, now)
		}
	}
}

func (b *Batcher) handle(ctx context.Context, c change.Change) {
	pd := policyDecider{c: c}
	for _, r := range c.Rules {
		if !c.Observed.IsZero() && c.Observed.Before(r.Active) {
			// Seen before the rule existed (the watch held it for the
			// webhook's claim while the rule arrived): the target's
			// reconcile records the object, not this change.
			b.opts.Log.V(1).Info("change predates the rule; left to the reconcile", "rule", r.Key.String(),
				"resource", c.Resource.String(), "namespace", c.Namespace, "name", c.Name)
			continue
		}
		// A DELETE is never dropped by a policy: the file of an object
		// that is gone (or left the selection) must go whoever removed it
		// (docs/policies.md, "Deletes are always recorded").
		if r.Policy != nil && c.Operation != v1alpha1.OperationDelete {
			d, err := pd.decide(ctx, r.Policy)
			switch {
			case err != nil:
				// Fail open: a policy that cannot evaluate loses nothing;
				// the error is counted, logged and put on the rule.
				policyErrors.Inc()
				b.opts.Log.Error(err, "policy evaluation failed; recording the change", "rule", r.Key.String(),
					"resource", c.Resource.String(), "namespace", c.Namespace, "name", c.Name)
				if b.opts.Health != nil {
					b.opts.Health.Fail(r.Key, rules.Failure{Module: policyModule, Reason: v1alpha1.ReasonPolicyEvaluationFailed,
						Message: err.Error(), Generation: r.Generation, When: time.Now()})
				}
			case !d.Record:
				policyIgnored.Inc()
				b.opts.Log.V(1).Info("ignored by policy", "rule", r.Key.String(), "resource", c.Resource.String(),
					"namespace", c.Namespace, "name", c.Name, "user", c.User.Username, "reasons", d.Reasons)
				continue
			}
			if err == nil && b.opts.Health != nil {
				b.opts.Health.Recover(r.Key, policyModule)
			}
		}
		t, err := b.target(ctx, r.Target)
		if err != nil {
			// The remote may be down: keep the change and try again,
			// so that nothing is lost while it is.
			b.deferChange(r.Target, c, r)
			b.opts.Log.Error(err, "opening Git target; the change waits", "target", r.Target.String(), "rule", r.Key.String())
			continue
		}
		b.apply(ctx, c, r, t)
	}
}

// apply renders one rule's view of a change and adds it to its author's
// session.
func (b *Batcher) apply(ctx context.Context, c change.Change, r *rules.Rule, t *target) {
	if tr, open := b.breakers.open(r, time.Now()); open {
		// Fail closed at once: the object is not written, as if the
		// module had failed again, without spending its deadline.
		moduleErrors.WithLabelValues(tr.module).Inc()
		renderErrors.Inc()
		if b.opts.Health != nil {
			b.opts.Health.Fail(r.Key, rules.Failure{Module: tr.module, Reason: tr.reason, Message: tr.message,
				Generation: r.Generation, When: time.Now()})
		}
		b.opts.Log.V(1).Info("module breaker open; change not written", "rule", r.Key.String(), "module", tr.module,
			"resource", c.Resource.String(), "namespace", c.Namespace, "name", c.Name)
		return
	}
	f, err := render(ctx, c, r, t.spec)
	if errors.Is(err, transform.ErrSkipped) {
		return
	}
	if me := b.moduleFailed(r, err); me != nil {
		if b.opts.Health != nil {
			b.opts.Health.Fail(r.Key, rules.Failure{Module: me.module, Reason: me.reason, Message: me.Error(),
				Generation: r.Generation, When: time.Now()})
		}
	} else if err == nil && b.opts.Health != nil {
		for _, m := range r.Sanitizers {
			b.opts.Health.Recover(r.Key, m.Name)
		}
		if r.Layout != nil {
			b.opts.Health.Recover(r.Key, r.Layout.Name)
		}
	}
	if err != nil {
		renderErrors.Inc()
		b.opts.Log.Error(err, "rendering change", "rule", r.Key.String(), "resource", c.Resource.String(),
			"namespace", c.Namespace, "name", c.Name)
		return
	}
	now := time.Now()
	if old := t.place(placementOf(r, c), f); old != "" {
		// The layout moved the object: its old file goes in the same
		// commit, so the repository never holds it twice.
		for _, s := range t.sessions.add(c.User, fileChange{path: old, delete: true, movedFrom: true}, now) {
			t.commit(ctx, s, b.opts.Log)
		}
	}
	for _, s := range t.sessions.add(c.User, f, now) {
		t.commit(ctx, s, b.opts.Log)
	}
}

// moduleFailed counts a module's failure and feeds the rule's breaker; it
// returns the failure, or nil when err is not a module's.
func (b *Batcher) moduleFailed(r *rules.Rule, err error) *moduleError {
	var me *moduleError
	if !errors.As(err, &me) {
		return nil
	}
	moduleErrors.WithLabelValues(me.module).Inc()
	b.breakers.record(r, me, time.Now())
	return me
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

// deferredChange is a change whose target could not be opened yet.
type deferredChange struct {
	c change.Change
	r *rules.Rule
}

// maxDeferred bounds the changes kept per unreachable target; beyond it
// the oldest are dropped and counted.
const maxDeferred = 10000

func (b *Batcher) deferChange(key types.NamespacedName, c change.Change, r *rules.Rule) {
	if b.deferred == nil {
		b.deferred = map[types.NamespacedName][]deferredChange{}
	}
	list := append(b.deferred[key], deferredChange{c: c, r: r})
	if len(list) > maxDeferred {
		deferredDropped.Add(float64(len(list) - maxDeferred))
		list = list[len(list)-maxDeferred:]
	}
	b.deferred[key] = list
	deferredDepth.Set(float64(b.deferredCount()))
}

func (b *Batcher) deferredCount() int {
	n := 0
	for _, l := range b.deferred {
		n += len(l)
	}
	return n
}

// retryDeferred opens targets that have waiting changes and applies the
// changes in order once a target opens.
func (b *Batcher) retryDeferred(ctx context.Context, now time.Time) {
	if len(b.deferred) == 0 || now.Sub(b.lastRetry) < b.opts.RetryInterval {
		return
	}
	b.lastRetry = now
	for key, list := range b.deferred {
		t, err := b.target(ctx, key)
		if err != nil {
			b.opts.Log.V(1).Info("Git target still cannot be opened", "target", key.String(), "waiting", len(list), "error", err.Error())
			continue
		}
		delete(b.deferred, key)
		for _, d := range list {
			b.apply(ctx, d.c, d.r, t)
		}
	}
	deferredDepth.Set(float64(b.deferredCount()))
}

func (b *Batcher) tick(ctx context.Context, now time.Time) {
	b.retryDeferred(ctx, now)
	b.reconcileDue(ctx, now)
	b.mu.Lock()
	targets := make([]*target, 0, len(b.targets))
	for _, t := range b.targets {
		targets = append(targets, t)
	}
	b.mu.Unlock()
	for _, t := range targets {
		for _, s := range t.sessions.due(now) {
			t.commit(ctx, s, b.opts.Log)
		}
		t.maybeSync(ctx, now, b.opts.Log)
	}
}

func (b *Batcher) flushAll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.targets {
		for _, s := range t.sessions.all() {
			t.commit(ctx, s, b.opts.Log)
		}
		t.push(ctx, b.opts.Log)
		_ = t.writer.Close()
	}
}

// target returns the open target, opening its writer on first use.
func (b *Batcher) target(ctx context.Context, key types.NamespacedName) (*target, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.targets[key]; ok {
		return t, nil
	}
	gt, creds, err := b.opts.Targets.Target(ctx, key)
	if err != nil {
		return nil, err
	}
	spec := gt.Spec
	w, err := gitstore.Open(ctx, gitstore.Config{
		URL:       spec.URL,
		Branch:    spec.Branch,
		Auth:      creds.Auth,
		Signer:    creds.Signer,
		Dir:       path.Join(b.opts.WorkDir, key.Namespace, key.Name),
		Committer: gitstore.Signature{Name: spec.Commit.CommitterName, Email: spec.Commit.CommitterEmail},
	})
	if err != nil {
		return nil, fmt.Errorf("opening the repository of GitTarget %s: %w", key, err)
	}
	t := &target{
		key:    key,
		spec:   spec,
		writer: w,
		sessions: newSessions(Limits{
			Idle:       durationOr(spec.Batching.IdleTimeout.Duration, 5*time.Second),
			MaxChanges: intOr(int(spec.Batching.MaxChanges), 100),
			MaxAge:     durationOr(spec.Batching.MaxAge.Duration, time.Minute),
		}),
		lastSync: time.Now(),
	}
	b.targets[key] = t
	return t, nil
}

// Forget asks the batcher to close the writer of a target whose spec or
// credentials changed, or which was deleted: it commits and pushes what it
// holds, and the next change reopens the target with its current spec.
// Forget never blocks; it is safe to call from any goroutine.
func (b *Batcher) Forget(key types.NamespacedName) {
	select {
	case b.forget <- key:
	default:
		// The loop is busy with many forgets; one more is redundant
		// once the queued ones run, except for this key: retry later.
		go func() { b.forget <- key }()
	}
}

func (b *Batcher) forgetNow(ctx context.Context, key types.NamespacedName) {
	b.mu.Lock()
	t, ok := b.targets[key]
	delete(b.targets, key)
	b.mu.Unlock()
	b.wantReconcile(key)
	if !ok {
		return
	}
	for _, s := range t.sessions.all() {
		t.commit(ctx, s, b.opts.Log)
	}
	t.push(ctx, b.opts.Log)
	_ = t.writer.Close()
}

// target is one GitTarget's writer, sessions and push timeline.
type target struct {
	key      types.NamespacedName
	spec     v1alpha1.GitTargetSpec
	writer   *gitstore.Writer
	sessions *sessions
	unpushed int
	firstUnp time.Time
	lastSync time.Time
	// placed is the path each rule last wrote each object to, holders how
	// many placements point at a path (see place).
	placed  map[placementKey]string
	holders map[string]int
}

func (t *target) commit(ctx context.Context, s *session, log logr.Logger) {
	req := gitstore.CommitRequest{
		Author:  authorOf(s.author, t.spec.Commit),
		Message: message(s, t.key),
		When:    s.last,
	}
	for _, p := range s.order {
		f := s.files[p]
		req.Changes = append(req.Changes, gitstore.FileChange{Path: f.path, Content: f.content, Delete: f.delete})
	}
	h, err := t.writer.Commit(ctx, req)
	switch {
	case errors.Is(err, gitstore.ErrNoChange):
		return
	case err != nil:
		commitErrors.Inc()
		log.Error(err, "committing", "target", t.key.String(), "author", s.author.Username)
		return
	}
	commits.Inc()
	log.V(1).Info("committed", "target", t.key.String(), "author", s.author.Username, "commit", h.String(), "files", len(req.Changes))
	if t.unpushed == 0 {
		t.firstUnp = time.Now()
	}
	t.unpushed++
	if t.unpushed >= intOr(int(t.spec.Sync.PushAfterCommits), 20) {
		t.push(ctx, log)
	}
}

// maybeSync pushes when the oldest unpushed commit has waited the push
// interval, and pulls when idle for the pull interval.
func (t *target) maybeSync(ctx context.Context, now time.Time, log logr.Logger) {
	if t.unpushed > 0 && now.Sub(t.firstUnp) >= durationOr(t.spec.Sync.PushInterval.Duration, 10*time.Second) {
		t.push(ctx, log)
		return
	}
	if t.unpushed == 0 && t.sessions.empty() && now.Sub(t.lastSync) >= durationOr(t.spec.Sync.PullInterval.Duration, time.Minute) {
		t.lastSync = now
		if _, err := t.writer.Pull(ctx); err != nil {
			log.Error(err, "pulling", "target", t.key.String())
		}
	}
}

func (t *target) push(ctx context.Context, log logr.Logger) {
	if t.unpushed == 0 {
		return
	}
	res, err := t.writer.Push(ctx)
	if err != nil {
		pushErrors.Inc()
		log.Error(err, "pushing; will retry", "target", t.key.String(), "unpushed", t.unpushed)
		// Retry after another push interval.
		t.firstUnp = time.Now()
		return
	}
	pushes.Inc()
	log.V(1).Info("pushed", "target", t.key.String(), "commits", res.Pushed, "replayed", res.Replayed)
	t.unpushed = 0
	t.lastSync = time.Now()
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
	if len(s.changes) > 1 {
		for _, c := range s.changes {
			b.WriteString("- " + c + "\n")
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

// SetHealth sets where failures of the rules' WASM modules are reported;
// call it before Start.
func (b *Batcher) SetHealth(h *rules.Health) { b.opts.Health = h }

// SetNamespaceLabels sets how namespace labels are resolved for reconciles
// of rules with a namespace selector; call it before Start.
func (b *Batcher) SetNamespaceLabels(l rules.NamespaceLabeler) { b.opts.NamespaceLabels = l }
