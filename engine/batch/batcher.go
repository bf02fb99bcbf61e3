package batch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
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
	// WorkDir holds, per target, its clones and its journal.
	WorkDir string
	// Tick is how often sessions and push timers are checked; zero
	// means 100ms (a session closes at most this long after its idle timeout).
	Tick time.Duration
	// QueueSize bounds the changes waiting for each target's worker; zero
	// means 4096. Record waits (backpressure on that target only) when
	// its target's queue is full.
	QueueSize int
	// Log receives structured logs; never object contents.
	Log logr.Logger
	// Health receives failures of the rules' WASM modules; nil ignores
	// them.
	Health *rules.Health
	// RetryInterval is the first backoff after a failed pull, push or
	// target read; it doubles per failure up to MaxBackoff. Zero means 5
	// seconds.
	RetryInterval time.Duration
	// MaxBackoff caps the backoff; zero means one minute.
	MaxBackoff time.Duration
	// NetworkTimeout bounds every network exchange with a remote (fetch,
	// push); zero means gitstore.DefaultTimeout (30 seconds).
	NetworkTimeout time.Duration
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
	// FingerprintKeys gives each target the key of the plaintext HMACs
	// of its encrypted files (encrypt.go); nil fails every encryption
	// (closed: nothing written).
	FingerprintKeys FingerprintKeySource
	// WatchHanded returns the resourceVersion of the last write of an
	// object (by uid) that the watch is done with: handed on to Record
	// (after Record returned), found in an informer's initial list, or
	// judged no rule's; false when the watch has not seen the object. A
	// reconcile holds an object whose listed resourceVersion differs (its
	// write is on its way) or whose change waits in the target's queue.
	// Nil falls back to the time of the object's last write
	// (managedFields), which misses writes that leave no time there.
	WatchHanded func(uid types.UID) (resourceVersion string, ok bool)
}

// TargetStatus is what a target's worker holds back and why.
type TargetStatus struct {
	// Queued counts changes not rendered yet.
	Queued int
	// Waiting counts rendered file changes in author sessions not yet
	// committed.
	Waiting int
	// Unpushed counts local commits the remote does not have yet.
	Unpushed int
	// Reason is "" while nothing fails, else a v1alpha1 Synced reason
	// (CommitFailed, PushFailed, TargetUnavailable).
	Reason string
	// Message says what failed; it names paths and the remote, never
	// content or credentials.
	Message string
}

// Backlog is the number of changes not yet committed.
func (s TargetStatus) Backlog() int { return s.Queued + s.Waiting }

// Batcher receives confirmed changes and commits them per target and
// author session, with one worker goroutine per Git target. It implements
// change.Sink.
type Batcher struct {
	opts Options

	mu      sync.Mutex
	workers map[types.NamespacedName]*worker
	runCtx  context.Context
	wg      sync.WaitGroup

	// rec is the reconciles' bookkeeping, used by the Start goroutine
	// only; started is when Start began.
	rec     reconcileState
	started time.Time
	// asked holds targets whose spec or credentials changed (Forget),
	// for the Start goroutine to reconcile.
	askedMu sync.Mutex
	asked   map[types.NamespacedName]bool

	breakers breakers
}

// New returns a Batcher; run it with Start.
func New(opts Options) *Batcher {
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 5 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.MaxBackoff < opts.RetryInterval {
		opts.MaxBackoff = opts.RetryInterval
	}
	if opts.NetworkTimeout <= 0 {
		opts.NetworkTimeout = gitstore.DefaultTimeout
	}
	return &Batcher{opts: opts, workers: map[types.NamespacedName]*worker{}}
}

// Record hands a confirmed change to the worker of each target its rules
// write to, in the order Record is called. It returns at once unless a
// target's queue is full; then it waits for that target's worker only
// (which never waits on the network) or until ctx ends.
func (b *Batcher) Record(ctx context.Context, c change.Change) {
	var order []types.NamespacedName
	byTarget := map[types.NamespacedName][]*rules.Rule{}
	for _, r := range c.Rules {
		if _, ok := byTarget[r.Target]; !ok {
			order = append(order, r.Target)
		}
		byTarget[r.Target] = append(byTarget[r.Target], r)
	}
	for _, key := range order {
		b.worker(key).enqueue(ctx, item{c: c, rules: byTarget[key]})
	}
}

// worker returns the target's worker, starting it on first use.
func (b *Batcher) worker(key types.NamespacedName) *worker {
	b.mu.Lock()
	defer b.mu.Unlock()
	w, ok := b.workers[key]
	if !ok {
		w = newWorker(b, key)
		b.workers[key] = w
		if b.runCtx != nil {
			b.startWorker(w)
		}
	}
	return w
}

// startWorker runs w until the Start context ends; b.mu is held.
func (b *Batcher) startWorker(w *worker) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		w.run(b.runCtx)
	}()
}

// onTarget runs fn on the target's worker, after the changes queued before
// it, and returns its error.
func (b *Batcher) onTarget(ctx context.Context, key types.NamespacedName, fn func(t *target) error) error {
	it := item{job: func(_ context.Context, t *target) error { return fn(t) }, done: make(chan error, 1)}
	if !b.worker(key).enqueue(ctx, it) {
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status returns what the target's worker holds back; false when the
// target has no worker (nothing was recorded for it since the start).
func (b *Batcher) Status(key types.NamespacedName) (TargetStatus, bool) {
	b.mu.Lock()
	w, ok := b.workers[key]
	b.mu.Unlock()
	if !ok {
		return TargetStatus{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, true
}

// NeedLeaderElection makes the Batcher run on the leader only: one writer
// per repository.
func (b *Batcher) NeedLeaderElection() bool { return true }

// Start runs the target workers until ctx ends; each then commits and
// pushes what it holds. Targets with a clone or journal in WorkDir get a
// worker at once, so that commits a previous run left unpushed are pushed
// and journaled changes committed without waiting for a new change.
func (b *Batcher) Start(ctx context.Context) error {
	b.mu.Lock()
	b.runCtx = ctx
	for _, w := range b.workers {
		b.startWorker(w)
	}
	b.mu.Unlock()
	for _, key := range b.targetsOnDisk() {
		b.worker(key)
	}
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
			b.wg.Wait()
			return nil
		case now := <-ticker.C:
			b.askedMu.Lock()
			asked := b.asked
			b.asked = nil
			b.askedMu.Unlock()
			for key := range asked {
				b.wantReconcile(key)
			}
			b.reconcileDue(ctx, now)
		}
	}
}

// targetsOnDisk lists the targets WorkDir holds state for
// (WorkDir/<namespace>/<name>/{journal,clone-*}).
func (b *Batcher) targetsOnDisk() []types.NamespacedName {
	var out []types.NamespacedName
	if b.opts.WorkDir == "" {
		return nil
	}
	namespaces, err := os.ReadDir(b.opts.WorkDir)
	if err != nil {
		return nil
	}
	for _, ns := range namespaces {
		if !ns.IsDir() {
			continue
		}
		names, err := os.ReadDir(filepath.Join(b.opts.WorkDir, ns.Name()))
		if err != nil {
			continue
		}
		for _, n := range names {
			key := types.NamespacedName{Namespace: ns.Name(), Name: n.Name()}
			if n.IsDir() && hasState(targetDir(b.opts.WorkDir, key)) {
				out = append(out, key)
			}
		}
	}
	return out
}

func hasState(dir string) bool {
	if fi, err := os.Stat(filepath.Join(dir, "journal")); err == nil && fi.Size() > 0 {
		return true
	}
	clones, _ := filepath.Glob(filepath.Join(dir, "clone-*"))
	return len(clones) > 0
}

// Forget asks the target's worker to read its GitTarget again (its spec or
// credentials changed, or it was deleted): a new URL or branch moves to a
// fresh clone. The target is reconciled after it. Forget never blocks; it is safe to call from any goroutine.
func (b *Batcher) Forget(key types.NamespacedName) {
	b.askedMu.Lock()
	if b.asked == nil {
		b.asked = map[types.NamespacedName]bool{}
	}
	b.asked[key] = true
	b.askedMu.Unlock()
	b.mu.Lock()
	w, ok := b.workers[key]
	b.mu.Unlock()
	if !ok {
		return
	}
	select {
	case w.forget <- struct{}{}:
	default: // one is pending already
	}
}

// ReconcileResources asks for a reconcile of every target with a rule on
// one of the resources: the watch missed their events for a moment (an
// informer was replaced). It never blocks; it is safe to call from any
// goroutine.
func (b *Batcher) ReconcileResources(resources []schema.GroupResource) {
	if b.opts.Index == nil {
		return
	}
	gap := map[schema.GroupResource]bool{}
	for _, gr := range resources {
		gap[gr] = true
	}
	b.askedMu.Lock()
	defer b.askedMu.Unlock()
	for _, r := range b.opts.Index.Rules() {
		for _, res := range r.Resources {
			if gap[res.GVR.GroupResource()] {
				if b.asked == nil {
					b.asked = map[types.NamespacedName]bool{}
				}
				b.asked[r.Target] = true
			}
		}
	}
}

// SetHealth sets where failures of the rules' WASM modules are reported;
// call it before Start.
func (b *Batcher) SetHealth(h *rules.Health) { b.opts.Health = h }

// SetNamespaceLabels sets how namespace labels are resolved for reconciles
// of rules with a namespace selector; call it before Start.
func (b *Batcher) SetNamespaceLabels(l rules.NamespaceLabeler) { b.opts.NamespaceLabels = l }
