package batch

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// item is one entry of a target's queue: a confirmed change with the rules
// of this target that selected it, or a job to run on the worker.
type item struct {
	c     change.Change
	rules []*rules.Rule
	job   func(ctx context.Context, t *target) error
	done  chan error
}

// netOp is a network exchange with the target's remote.
type netOp int

const (
	opPull netOp = iota
	opPush
)

func (o netOp) String() string {
	if o == opPush {
		return "push"
	}
	return "pull"
}

type netResult struct {
	op  netOp
	res gitstore.SyncResult
	err error
}

// worker is the one goroutine of one Git target. It takes the target's
// changes in the order Record received them, renders them into author
// sessions, journals them, commits closed sessions into the local clone
// and pushes on the timeline. Network calls run on a helper goroutine with
// a deadline while the worker keeps taking changes, so a slow or hung
// remote delays only its own pushes, never another target nor Record.
type worker struct {
	b       *Batcher
	key     types.NamespacedName
	queue   chan item
	forget  chan struct{}
	netDone chan netResult

	t *target
	// held are changes taken while the GitTarget could not be read (no
	// spec to render them with); they keep their order.
	held           []item
	resolveErr     error
	resolveFails   int
	resolveRetryAt time.Time

	mu     sync.Mutex
	status TargetStatus
	// last is what publish last published (read and written by the
	// worker's goroutine only); published once it has published.
	last      TargetStatus
	published bool

	// queuedMu guards queued: per object (uid), the changes handed to
	// this worker and not yet processed (in its queue or held). A
	// reconcile, which runs on the worker, leaves such objects to them.
	queuedMu sync.Mutex
	queued   map[types.UID]int
}

func newWorker(b *Batcher, key types.NamespacedName) *worker {
	return &worker{b: b, key: key, queue: make(chan item, b.opts.QueueSize), forget: make(chan struct{}, 1),
		netDone: make(chan netResult, 1)}
}

// enqueue hands it to the worker. When the target's queue is full the
// caller waits (backpressure on this target only) until there is room or
// ctx ends.
func (w *worker) enqueue(ctx context.Context, it item) bool {
	// Counted before it is in the queue: a reconcile that finds the
	// watch done with the object's write then finds it here.
	w.countQueued(it, 1)
	select {
	case w.queue <- it:
		return true
	default:
	}
	recordBlocked.Inc()
	select {
	case w.queue <- it:
		return true
	case <-ctx.Done():
		w.countQueued(it, -1)
		return false
	}
}

// countQueued adds d to the queued changes of the item's object.
func (w *worker) countQueued(it item, d int) {
	uid := it.c.UID
	if it.job != nil || uid == "" {
		return
	}
	w.queuedMu.Lock()
	defer w.queuedMu.Unlock()
	if w.queued == nil {
		w.queued = map[types.UID]int{}
	}
	if n := w.queued[uid] + d; n > 0 {
		w.queued[uid] = n
	} else {
		delete(w.queued, uid)
	}
}

// hasQueued reports whether a change of the object waits for the worker.
func (w *worker) hasQueued(uid types.UID) bool {
	w.queuedMu.Lock()
	defer w.queuedMu.Unlock()
	return w.queued[uid] > 0
}

// maxBatch bounds the changes taken between two journal fsyncs.
const maxBatch = 512

func (w *worker) run(ctx context.Context) {
	tick := w.b.opts.Tick
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	w.resolve(ctx, time.Now())
	w.afterBatch(ctx)
	for {
		// A quiet target only waits for its pull interval: it is checked
		// less often (a change that arrives is taken at once and brings
		// the short tick back for its session).
		if d := w.tickEvery(); d != tick {
			tick = d
			ticker.Reset(d)
		}
		select {
		case <-ctx.Done():
			w.shutdown()
			return
		case it := <-w.queue:
			w.take(ctx, it)
		drain:
			for i := 1; i < maxBatch; i++ {
				select {
				case it := <-w.queue:
					w.take(ctx, it)
				default:
					break drain
				}
			}
			w.afterBatch(ctx)
		case r := <-w.netDone:
			w.netFinished(r)
			w.afterBatch(ctx)
		case <-w.forget:
			if w.t != nil {
				w.t.reopen = true
			}
			w.afterBatch(ctx)
		case now := <-ticker.C:
			w.tick(ctx, now)
		}
		w.publish()
	}
}

// idleTicks is how many ticks a quiet worker waits between checks.
const idleTicks = 10

// tickEvery is the worker's tick: Options.Tick while anything is open,
// waiting or failing, idleTicks times longer (bounded by the pull
// interval) when the target is quiet. Each tick of an idle worker was a
// wake-up of the process: about 1 ms of CPU per second per target in
// make bench-e2e.
func (w *worker) tickEvery() time.Duration {
	t, tick := w.t, w.b.opts.Tick
	if t == nil || len(w.held) > 0 || t.netBusy || t.reopen || !t.synced || t.needPull || t.netFails > 0 ||
		t.unpushed > 0 || len(t.pending) > 0 || !t.sessions.empty() || t.journal.dirty || t.journal.unsynced {
		return tick
	}
	idle := idleTicks * tick
	if pull := durationOr(t.spec.Sync.PullInterval.Duration, time.Minute); pull/2 < idle {
		idle = max(tick, pull/2)
	}
	return idle
}

// take processes one item, or holds it (keeping order) while the
// GitTarget cannot be read.
func (w *worker) take(ctx context.Context, it item) {
	if w.t == nil || len(w.held) > 0 {
		if it.job != nil && w.t == nil {
			it.done <- fmt.Errorf("GitTarget %s is not available: %w", w.key, w.resolveErr)
			return
		}
		w.held = append(w.held, it)
		if limit := 4 * w.b.opts.QueueSize; len(w.held) > limit {
			// Only a GitTarget that stays unreadable (deleted, Secret
			// missing: its rules are stopped) gets here.
			heldDropped.Add(float64(len(w.held) - limit))
			w.b.opts.Log.Error(w.resolveErr, "dropping the oldest changes held for an unreadable GitTarget",
				"target", w.key.String(), "dropped", len(w.held)-limit)
			for _, dropped := range w.held[:len(w.held)-limit] {
				w.countQueued(dropped, -1)
			}
			w.held = w.held[len(w.held)-limit:]
		}
		return
	}
	w.process(ctx, it)
}

func (w *worker) process(ctx context.Context, it item) {
	t := w.t
	if it.job != nil {
		it.done <- it.job(ctx, t)
		return
	}
	defer w.countQueued(it, -1)
	pd := policyDecider{c: it.c}
	now := time.Now()
	for _, r := range it.rules {
		f, ok := w.b.stage(ctx, &pd, it.c, r, t.spec, w.b.sealerFor(t))
		if !ok {
			continue
		}
		f.trace, f.observed = it.c.Trace, it.c.Observed
		t.add(placementOf(r, it.c), it.c.User, f, now)
	}
}

// resolve reads the GitTarget and opens its clone when it is not open.
func (w *worker) resolve(ctx context.Context, now time.Time) {
	if w.t != nil || now.Before(w.resolveRetryAt) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, w.b.opts.NetworkTimeout)
	gt, creds, err := w.b.opts.Targets.Target(rctx, w.key)
	cancel()
	if err == nil {
		w.t, err = w.b.openTarget(gt, creds, w.key)
	}
	if err != nil {
		setReachable(w.key, false)
		w.resolveFails++
		w.resolveErr = err
		w.resolveRetryAt = now.Add(backoff(w.resolveFails, w.b.opts.RetryInterval, w.b.opts.MaxBackoff))
		if w.resolveFails == 1 || len(w.held) > 0 {
			w.b.opts.Log.Error(err, "opening Git target; its changes wait", "target", w.key.String(), "waiting", len(w.held))
		}
		return
	}
	w.resolveFails, w.resolveErr = 0, nil
	held := w.held
	w.held = nil
	for _, it := range held {
		w.process(ctx, it)
	}
}

func (w *worker) tick(ctx context.Context, now time.Time) {
	if w.t == nil {
		w.resolve(ctx, now)
		if w.t == nil {
			return
		}
	}
	w.t.pending = append(w.t.pending, w.t.sessions.due(now)...)
	w.afterBatch(ctx)
}

// maxJournal bounds a target's journal: beyond it the open sessions are
// closed and committed early, which empties it.
const maxJournal = 64 << 20

// afterBatch makes the batch durable, then commits and syncs what is due.
func (w *worker) afterBatch(ctx context.Context) {
	t := w.t
	if t == nil {
		return
	}
	now := time.Now()
	// Written at once (a SIGKILL loses nothing taken); fsync'd before a
	// session is committed, else at most every journalSyncEvery.
	if err := t.journal.flush(now); err != nil {
		t.log.Error(err, "writing the journal")
	}
	if t.journal.size > maxJournal {
		t.pending = append(t.pending, t.sessions.all()...)
	}
	if len(t.pending) > 0 || t.journal.syncDue(now) {
		if err := t.journal.sync(); err != nil {
			t.log.Error(err, "syncing the journal")
		}
	}
	if t.netBusy {
		return
	}
	if t.reopen {
		w.reopen(ctx)
		now = time.Now()
	}
	t.commitPending(ctx, now, false)
	w.maybeNet(ctx, now)
}

// reopen reads the GitTarget again and reopens the clone with its spec and
// credentials; a new URL or branch moves to a fresh clone.
func (w *worker) reopen(ctx context.Context) {
	t := w.t
	t.reopen = false
	rctx, cancel := context.WithTimeout(ctx, w.b.opts.NetworkTimeout)
	gt, creds, err := w.b.opts.Targets.Target(rctx, w.key)
	cancel()
	if err != nil {
		if !apierrors.IsNotFound(err) {
			t.log.V(1).Info("reading the GitTarget again failed; keeping its last spec", "error", err.Error())
		}
		return
	}
	if err := w.b.openWriter(t, gt, creds); err != nil {
		t.log.Error(err, "reopening the clone")
	}
}

// maybeNet starts a push when commits wait (at once when no session is
// open or waiting to be committed, else after N commits or the push
// interval; at once for commits a previous run left), a pull when a commit
// failed or the target has been idle for the pull interval.
func (w *worker) maybeNet(ctx context.Context, now time.Time) {
	t := w.t
	if t.netBusy || now.Before(t.netRetryAt) {
		return
	}
	pushInterval := durationOr(t.spec.Sync.PushInterval.Duration, 10*time.Second)
	// Nothing else is waiting (no open session, no session to commit, no
	// change queued): the commit just made ends the burst, so the push
	// interval would only add lag. While changes keep coming, pushes wait
	// to take several commits at once.
	quiet := t.sessions.empty() && len(t.pending) == 0 && len(w.queue) == 0
	switch {
	case t.unpushed > 0 && (quiet || !t.synced || t.netFails > 0 || t.unpushed >= intOr(int(t.spec.Sync.PushAfterCommits), 20) ||
		now.Sub(t.firstUnp) >= pushInterval):
		w.startNet(ctx, opPush)
	case (t.needPull && !now.Before(t.commitRetryAt)) || !t.synced:
		// A failed commit is retried after a fetch: a person may have
		// removed what was in its way.
		w.startNet(ctx, opPull)
	case t.unpushed == 0 && t.sessions.empty() && len(t.pending) == 0 &&
		now.Sub(t.lastSync) >= durationOr(t.spec.Sync.PullInterval.Duration, time.Minute):
		w.startNet(ctx, opPull)
	}
}

func (w *worker) startNet(ctx context.Context, op netOp) {
	t := w.t
	t.netBusy = true
	t.netStarted = time.Now()
	wr, timeout := t.writer, w.b.opts.NetworkTimeout
	tight := op == opPush && t.reconcilePush
	if op == opPush {
		t.reconcilePush = false
	}
	go func() {
		if tight {
			defer tightGC()()
		}
		nctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var r netResult
		r.op = op
		if op == opPush {
			r.res, r.err = wr.Push(nctx)
		} else {
			r.res, r.err = wr.Pull(nctx)
		}
		w.netDone <- r
	}()
}

func (w *worker) netFinished(r netResult) {
	t := w.t
	t.netBusy = false
	now := time.Now()
	t.reachable(r.err == nil)
	if r.err != nil {
		pushErrors.Inc()
		t.netFails++
		t.netErr = fmt.Errorf("%s: %w", r.op, r.err)
		t.netRetryAt = now.Add(backoff(t.netFails, w.b.opts.RetryInterval, w.b.opts.MaxBackoff))
		// The URL or credentials may be what is being fixed.
		t.reopen = true
		t.log.Error(r.err, "Git "+r.op.String()+" failed; retrying", "attempt", t.netFails, "retryAt", t.netRetryAt,
			"unpushed", t.unpushed)
	} else {
		if r.op == opPush && r.res.Pushed > 0 {
			pushes.Inc()
			t.pushed(t.netStarted, now)
			t.log.V(1).Info("pushed", "commits", r.res.Pushed, "replayed", r.res.Replayed)
		}
		t.netFails, t.netErr, t.synced, t.lastSync = 0, nil, true, now
		if r.op == opPull {
			t.needPull = false
		}
	}
	if n, err := t.writer.Unpushed(); err == nil {
		if n > 0 && t.unpushed == 0 {
			t.firstUnp = now
		}
		t.unpushed = n
	}
}

// shutdown commits every session and pushes once, bounded by the network
// timeout; what the push cannot send waits in the clone for the next start.
func (w *worker) shutdown() {
	t := w.t
	if t == nil {
		if len(w.held) > 0 {
			w.b.opts.Log.Error(w.resolveErr, "stopping with changes for a GitTarget that could not be read",
				"target", w.key.String(), "lost", len(w.held))
		}
		return
	}
	if t.netBusy {
		<-w.netDone
		t.netBusy = false
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.b.opts.NetworkTimeout)
	defer cancel()
	t.pending = append(t.pending, t.sessions.all()...)
	t.commitPending(ctx, time.Now(), true)
	if err := t.journal.close(); err != nil {
		t.log.Error(err, "closing the journal")
	}
	if n, err := t.writer.Unpushed(); err == nil && n > 0 {
		if _, err := t.writer.Push(ctx); err != nil {
			t.log.Error(err, "pushing at shutdown; the commits are pushed at the next start", "unpushed", n)
		}
	}
	_ = t.writer.Close()
	w.publish()
}

// publish updates the status and metrics of the target.
func (w *worker) publish() {
	st := TargetStatus{Queued: len(w.queue) + len(w.held)}
	switch t := w.t; {
	case t == nil:
		if w.resolveErr != nil {
			st.Reason, st.Message = v1alpha1.ReasonTargetUnavailable, w.resolveErr.Error()
		}
	default:
		st.Waiting, st.Unpushed = t.backlog(), t.unpushed
		switch {
		case t.commitErr != nil:
			st.Reason, st.Message = v1alpha1.ReasonCommitFailed, t.commitErr.Error()
		case t.netErr != nil:
			st.Reason, st.Message = v1alpha1.ReasonPushFailed, t.netErr.Error()
		}
	}
	// The loop publishes after every tick and batch; most change nothing,
	// and the gauges' label lookups were 6 % of the manager's CPU.
	if w.published && st == w.last {
		return
	}
	w.published, w.last = true, st
	label := w.key.String()
	queueDepth.WithLabelValues(label).Set(float64(st.Queued))
	backlog.WithLabelValues(label).Set(float64(st.Queued + st.Waiting))
	unpushedCommits.WithLabelValues(label).Set(float64(st.Unpushed))
	w.mu.Lock()
	w.status = st
	w.mu.Unlock()
}
