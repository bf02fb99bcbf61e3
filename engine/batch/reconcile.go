package batch

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	"github.com/go-git/go-git/v5/plumbing"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/reconcile"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// ObjectLister lists the objects of a resource, in one namespace or (with
// an empty namespace) in all, and reads one.
type ObjectLister interface {
	reconcile.Lister
	// Get returns one object; nil and no error when it does not exist.
	Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error)
}

// ReconcileUser is the user a reconcile's policy input shows: its objects
// were not written by anyone the operator saw.
const ReconcileUser = "gitops-reverser:reconcile"

// DefaultReconcileInterval is how often every target is reconciled when
// Options.ReconcileInterval is zero.
const DefaultReconcileInterval = 10 * time.Minute

// youngMargin is how long an object held out of a reconcile waits for a
// recheck: its change may still be on its way through the watch, the
// webhook's claim and the target's queue (onItsWay), and a reconcile that
// wrote it first would turn the attributed commit into a no-op. A recheck
// writes it only if the repository still differs; after maxRechecks it is
// written even if the watch never delivered its write. The same margin
// delays the removal of a file whose object disappeared, except at the
// first reconcile of a target after the operator started: nothing can be
// on its way for what happened while it was down.
var youngMargin = 20 * time.Second // a variable for the package's tests

// maxRechecks bounds the rechecks of a held object: the bound for a watch
// that never delivers a write (youngMargin each).
const maxRechecks = 5

// syncWait bounds how long a reconcile waits for the watch's informers to
// sync before it lists anyway.
const syncWait = time.Minute

var (
	reconcileRuns  = telemetry.NewCounterVec("gitops_reverser_reconciles_total", "Full reconciles of a Git target, by result (committed, unchanged, failed).", "result")
	reconcileFiles = telemetry.NewCounterVec("gitops_reverser_reconcile_files_total", "Files a reconcile added, updated or removed.", "change")
)

func init() {
	// Serve every label value from the start (docs/metrics.md).
	for _, r := range []string{"committed", "unchanged", "failed"} {
		reconcileRuns.WithLabelValues(r)
	}
	for _, c := range []string{"added", "updated", "removed"} {
		reconcileFiles.WithLabelValues(c)
	}
}

// reconcileState is what the batcher knows about the reconciles of its
// targets; only the Start goroutine touches it.
type reconcileState struct {
	targets  map[types.NamespacedName]*targetReconcile
	rechecks []recheck
	// syncWaitSince is when a due reconcile first waited for the watch.
	syncWaitSince time.Time
}

// targetReconcile is one target's reconcile bookkeeping.
type targetReconcile struct {
	// rules fingerprints the rules of the last reconcile.
	rules string
	// due asks for a reconcile at the next chance.
	due bool
	// done is set after the first reconcile in this process.
	done bool
	// last is when the last reconcile succeeded, failed when the last one
	// failed (zero after a success).
	last, failed time.Time
	// failures counts failed reconciles in a row, for the backoff.
	failures int
	cache    reconcile.IdentityCache
}

// recheck is an object or a file left out of a reconcile for the margin.
type recheck struct {
	target types.NamespacedName
	rule   rules.Key
	obj    reconcile.Ref
	// remove is the path to remove if the object is still gone; hash the
	// blob the reconcile saw there. Empty for an object to write.
	remove   string
	hash     plumbing.Hash
	due      time.Time
	attempts int
}

func (s *reconcileState) target(key types.NamespacedName) *targetReconcile {
	if s.targets == nil {
		s.targets = map[types.NamespacedName]*targetReconcile{}
	}
	tr, ok := s.targets[key]
	if !ok {
		tr = &targetReconcile{}
		s.targets[key] = tr
	}
	return tr
}

// wantReconcile asks for a reconcile of the target (its spec or
// credentials changed).
func (b *Batcher) wantReconcile(key types.NamespacedName) {
	if tr, ok := b.rec.targets[key]; ok {
		tr.due = true
	}
}

// rulesChanged asks for a reconcile of every target whose rules changed
// (added, removed, a new generation or newly resolved resources) and runs
// what is due.
func (b *Batcher) rulesChanged(ctx context.Context) {
	if b.opts.Index == nil || b.opts.Lister == nil {
		return
	}
	prints := map[types.NamespacedName]*strings.Builder{}
	for _, r := range b.opts.Index.Rules() {
		sb, ok := prints[r.Target]
		if !ok {
			sb = &strings.Builder{}
			prints[r.Target] = sb
		}
		fmt.Fprintf(sb, "%s@%d", r.Key, r.Generation)
		for _, res := range r.Resources {
			sb.WriteString("," + res.GVR.String())
		}
		sb.WriteString(";")
	}
	for key, sb := range prints {
		tr := b.rec.target(key)
		if tr.rules != sb.String() {
			tr.rules, tr.due = sb.String(), true
		}
	}
	for key := range b.rec.targets {
		if _, ok := prints[key]; !ok {
			// No rule writes there any more: nothing is managed.
			delete(b.rec.targets, key)
		}
	}
	b.reconcileDue(ctx, time.Now())
}

// reconcileDue reconciles the targets that are due (asked for, on their
// interval, or retrying a failure) and writes the rechecks that are due.
func (b *Batcher) reconcileDue(ctx context.Context, now time.Time) {
	if b.opts.Index == nil || b.opts.Lister == nil {
		return
	}
	interval := b.opts.ReconcileInterval
	if interval <= 0 {
		interval = DefaultReconcileInterval
	}
	var due []types.NamespacedName
	for key, tr := range b.rec.targets {
		switch {
		case !tr.failed.IsZero():
			if now.Sub(tr.failed) >= retryAfter(b.opts.RetryInterval, tr.failures, interval) {
				due = append(due, key)
			}
		case tr.due, tr.done && now.Sub(tr.last) >= interval:
			due = append(due, key)
		}
	}
	if len(due) > 0 && b.waitForWatch(now) {
		due = nil // rechecks need no list
	}
	// Changes already queued for a target happened before the listing: a
	// reconcile runs on the target's worker after them (onTarget), so
	// they go first with their authors, however long the worker is busy.
	sort.Slice(due, func(i, j int) bool { return due[i].String() < due[j].String() })
	for _, key := range due {
		b.reconcileTarget(ctx, key, now)
	}
	b.recheckDue(ctx, now)
}

// waitForWatch reports whether a reconcile must wait for the watch: its
// informers list the objects too, and they hand on only what changes after
// their own list. A reconcile that listed first could miss a change made
// between the two lists until the object changes again; listing after them
// overlaps instead, and the margin leaves the overlap to the watch.
func (b *Batcher) waitForWatch(now time.Time) bool {
	if b.opts.WatchSynced == nil || b.opts.WatchSynced() {
		b.rec.syncWaitSince = time.Time{}
		return false
	}
	if b.rec.syncWaitSince.IsZero() {
		b.rec.syncWaitSince = now
	}
	if now.Sub(b.rec.syncWaitSince) < syncWait {
		return true
	}
	b.opts.Log.Info("the watch has not synced; reconciling anyway", "waited", now.Sub(b.rec.syncWaitSince).String())
	b.rec.syncWaitSince = time.Time{}
	return false
}

// reconcileTarget makes the target's files equal what its rules select, in
// one commit by the operator.
func (b *Batcher) reconcileTarget(ctx context.Context, key types.NamespacedName, now time.Time) {
	tr := b.rec.target(key)
	if err := b.reconcileOnce(ctx, key, tr, now); err != nil {
		if errors.Is(err, errTargetBusy) {
			// Not a failure: asked again at the next tick.
			if tr.failed.IsZero() {
				tr.due = true
			}
			return
		}
		reconcileRuns.WithLabelValues("failed").Inc()
		tr.failed = now
		tr.failures++
		b.opts.Log.Error(err, "reconciling the Git target; will retry", "target", key.String())
		return
	}
	tr.due, tr.done, tr.last, tr.failed, tr.failures = false, true, now, time.Time{}, 0
}

// retryAfter doubles the wait after each failure in a row, from retry up to
// limit: a reconcile lists every selected resource, so one that keeps
// failing (a resource it may not list) must not list the others every few
// seconds.
func retryAfter(retry time.Duration, failures int, limit time.Duration) time.Duration {
	d := retry
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func (b *Batcher) reconcileOnce(ctx context.Context, key types.NamespacedName, tr *targetReconcile, now time.Time) error {
	var rs []*rules.Rule
	for _, r := range b.opts.Index.Rules() {
		if r.Target == key {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	var rechecks []recheck
	err := b.onTarget(ctx, key, func(t *target) error {
		var err error
		rechecks, err = b.reconcileOn(ctx, t, rs, tr, now)
		return err
	})
	if err != nil {
		return err
	}
	b.rec.rechecks = append(b.rec.rechecks, rechecks...)
	return nil
}

// errTargetBusy says a reconcile cannot run on the target's clone yet: a
// fetch or push is running on it, or it has not been fetched in this run.
var errTargetBusy = errors.New("the target's clone is busy or not fetched yet")

// readyToReconcile tells whether the clone may be compared with the
// cluster now. A clone opened without a fetch (a fresh one, or one a
// previous run left) may miss what others pushed since: a reconcile against
// it would add files it cannot see and miss files to remove. The worker
// fetches such a clone on its own (maybeNet), so the reconcile only waits.
func readyToReconcile(t *target) error {
	switch {
	case t.netBusy:
		return fmt.Errorf("a fetch or push is running: %w", errTargetBusy)
	case !t.synced:
		return fmt.Errorf("the clone has not been fetched in this run: %w", errTargetBusy)
	}
	return nil
}

// flushSessions commits the target's open and pending sessions, so that a
// reconcile compares with them and lands on top; it fails when one cannot
// be committed (the reconcile must not land below an older session).
func flushSessions(ctx context.Context, t *target) error {
	t.pending = append(t.pending, t.sessions.all()...)
	t.commitPending(ctx, time.Now(), true)
	if len(t.pending) > 0 {
		return fmt.Errorf("%d author session(s) wait to be committed: %w", len(t.pending), t.commitErr)
	}
	return nil
}

// reconcileOn plans and commits one reconcile on the target's worker; it
// returns the rechecks for the Start goroutine to keep.
func (b *Batcher) reconcileOn(ctx context.Context, t *target, rs []*rules.Rule, tr *targetReconcile, now time.Time) ([]recheck, error) {
	key := t.key
	if err := readyToReconcile(t); err != nil {
		return nil, err
	}
	if err := flushSessions(ctx, t); err != nil {
		return nil, err
	}
	defer tightGC()()
	var rechecks []recheck
	files, err := t.writer.ListFiles(basePathOf(t.spec))
	if err != nil {
		return nil, fmt.Errorf("listing the branch's files: %w", err)
	}
	plan, err := reconcile.Make(ctx, reconcile.Input{
		Rules: rs, Lister: b.opts.Lister, Render: b.reconcileRender(t, now),
		Files: files, Read: t.writer.ReadFile, NamespaceLabels: b.opts.NamespaceLabels,
		Hold: func(obj *unstructured.Unstructured) bool { return b.onItsWay(key, obj, now) }, Cache: &tr.cache,
	})
	if err != nil {
		return nil, fmt.Errorf("planning the reconcile: %w", err)
	}
	for _, h := range plan.Held {
		if h.Young {
			rechecks = append(rechecks, recheck{target: key, rule: h.Rule, obj: h.Object, due: now.Add(youngMargin), attempts: 1})
		}
	}
	var removals []string
	for _, rm := range plan.Removals {
		if rm.Orphan && tr.done {
			// Its delete may be on its way with its author.
			rechecks = append(rechecks, recheck{target: key, obj: rm.Object, remove: rm.Path, hash: rm.Hash,
				due: now.Add(youngMargin), attempts: 1})
			continue
		}
		removals = append(removals, rm.Path)
	}
	for _, p := range plan.Placed {
		t.place(placementKey{rule: p.Rule, resource: p.Object.GVR, namespace: p.Object.Namespace, name: p.Object.Name},
			fileChange{path: p.Path})
	}
	why := "on its interval"
	switch {
	case !tr.done:
		why = "at the operator's start"
	case !tr.failed.IsZero():
		why = "retrying a failed reconcile"
	case tr.due:
		why = "after a change of its rules or of the target"
	}
	b.opts.Log.V(1).Info("planned a reconcile", "target", key.String(), "listed", plan.Listed, "unchanged", plan.Unchanged,
		"added", plan.Added, "updated", plan.Updated, "removed", len(removals), "held", len(plan.Held), "read", plan.Read)
	writes, added, updated := plan.Writes, plan.Added, plan.Updated
	if w, isNew, ok := sopsConfigWrite(t); ok {
		writes = append(writes, w)
		if isNew {
			added++
		} else {
			updated++
		}
	}
	return rechecks, b.commitReconcile(ctx, t, writes, removals, added, updated, why)
}

// basePathOf is the target's base path as a repository path ("" for the
// root).
func basePathOf(spec v1alpha1.GitTargetSpec) string {
	return strings.Trim(path.Clean("/"+spec.BasePath), "/")
}

// onItsWay reports whether a change of obj may still be on its way to the
// target key's worker with its author, so that a reconcile must leave the
// object's files to it: the watch is not done with the resourceVersion the
// listing returned (its event is not delivered yet, waits for the
// webhook's claim, or the listing is older than what the watch handed on),
// or a change of the object waits in the worker's queue (behind the
// reconcile, which runs on the worker). The watch is asked first: it
// counts a change in the queue before it reports the change handed on, so
// the two answers leave no gap. Without WatchHanded it falls back to
// young.
func (b *Batcher) onItsWay(key types.NamespacedName, obj *unstructured.Unstructured, now time.Time) bool {
	if b.opts.WatchHanded == nil {
		return b.young(obj, now)
	}
	rv, ok := b.opts.WatchHanded(obj.GetUID())
	if !ok || rv != obj.GetResourceVersion() {
		return true
	}
	return b.worker(key).hasQueued(obj.GetUID())
}

// young reports whether obj was written after the operator started and
// within the margin: its change may still be on its way with its author.
// Writes before the start are in the watch's initial list, which hands on
// nothing: only the reconcile records them. managedFields times have
// second precision, so a write in the second of the start counts as after
// it (held for the margin rather than written without its author). It is
// only a fallback without the watch's progress: a write through the scale
// subresource (kubectl scale) leaves no time in managedFields, so it looks
// as old as the object's last other write.
func (b *Batcher) young(obj *unstructured.Unstructured, now time.Time) bool {
	lw := lastWrite(obj)
	return !lw.Before(b.started.Truncate(time.Second)) && now.Sub(lw) < youngMargin
}

// lastWrite is when the object was last written, from managedFields (the
// API server records every manager's last operation) or its creation.
func lastWrite(obj *unstructured.Unstructured) time.Time {
	last := obj.GetCreationTimestamp().Time
	for _, mf := range obj.GetManagedFields() {
		if mf.Time != nil && mf.Time.After(last) {
			last = mf.Time.Time
		}
	}
	return last
}

// errBreakerOpen keeps an object's file as it is while its rule's module
// breaker is open.
var errBreakerOpen = errors.New("module breaker open")

// reconcileRender renders an object for a reconcile through the stages a
// live change passes: the rule's policy (as a CREATE by ReconcileUser), the
// module breaker, the sanitizers and the layout.
func (b *Batcher) reconcileRender(t *target, now time.Time) reconcile.RenderFunc {
	return func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (string, []byte, error) {
		c := reconcileChange(r, gvr, obj, now)
		if r.Policy != nil {
			pd := policyDecider{c: c}
			// A policy that cannot evaluate fails open, as for a change.
			if d, err := redactedFor(&pd, r).decide(ctx, r.Policy); err == nil && !d.Record {
				return "", nil, reconcile.ErrNotRecorded
			}
		}
		if _, open := b.breakers.open(r, now); open {
			return "", nil, errBreakerOpen // failing closed, without spending a deadline per object
		}
		f, err := render(ctx, c, r, t.spec, b.sealerFor(t))
		if errors.Is(err, transform.ErrSkipped) {
			return "", nil, reconcile.ErrNotRecorded
		}
		b.encryptionHealth(r, c, err)
		b.moduleFailed(r, err)
		if err != nil {
			// The same failure a change would meet: fail closed for this
			// object, the rule says why on its next change.
			renderErrors.Inc()
			b.opts.Log.Error(err, "rendering an object for a reconcile", "rule", r.Key.String(),
				"resource", gvr.String(), "namespace", obj.GetNamespace(), "name", obj.GetName())
			return "", nil, err
		}
		return f.path, f.content, nil
	}
}

func (b *Batcher) recheckIsDue(now time.Time) bool {
	for _, rc := range b.rec.rechecks {
		if !now.Before(rc.due) {
			return true
		}
	}
	return false
}

// recheckDue writes the objects and removes the files whose recheck is
// due, where the repository still differs from the cluster, one commit per
// target.
func (b *Batcher) recheckDue(ctx context.Context, now time.Time) {
	var keep []recheck
	byTarget := map[types.NamespacedName][]recheck{}
	for _, rc := range b.rec.rechecks {
		if now.Before(rc.due) {
			keep = append(keep, rc)
			continue
		}
		byTarget[rc.target] = append(byTarget[rc.target], rc)
	}
	b.rec.rechecks = keep
	keys := make([]types.NamespacedName, 0, len(byTarget))
	for k := range byTarget {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, key := range keys {
		if err := b.recheckTarget(ctx, key, byTarget[key], now); err != nil {
			b.opts.Log.Error(err, "writing the rechecks of a reconcile", "target", key.String())
		}
	}
}

func (b *Batcher) recheckTarget(ctx context.Context, key types.NamespacedName, due []recheck, now time.Time) error {
	var again []recheck
	err := b.onTarget(ctx, key, func(t *target) error {
		var err error
		again, err = b.recheckOn(ctx, t, due, now)
		return err
	})
	if err != nil && !errors.Is(err, errTargetBusy) {
		// Not now: try again after the margin rather than every tick.
		for i := range again {
			again[i].due = now.Add(youngMargin)
		}
	}
	b.rec.rechecks = append(b.rec.rechecks, again...)
	if errors.Is(err, errTargetBusy) {
		return nil
	}
	return err
}

// recheckOn runs on the target's worker; it returns the rechecks to try
// again.
func (b *Batcher) recheckOn(ctx context.Context, t *target, due []recheck, now time.Time) ([]recheck, error) {
	key := t.key
	if err := readyToReconcile(t); err != nil {
		return due, err
	}
	if err := flushSessions(ctx, t); err != nil {
		return due, err
	}
	var again []recheck
	var writes []gitstore.FileChange
	var removals []string
	added, updated := 0, 0
	for _, rc := range due {
		obj, err := b.opts.Lister.Get(ctx, rc.obj.GVR, rc.obj.Namespace, rc.obj.Name)
		if err != nil {
			return due, err
		}
		if rc.remove != "" {
			if obj != nil && obj.GetDeletionTimestamp() == nil && b.selectedByTarget(key, rc.obj.GVR, obj) {
				continue // back, or selected again: the next reconcile places it
			}
			if files, err := t.writer.ListFiles(rc.remove); err != nil || len(files) != 1 || files[0].Hash != rc.hash {
				continue // gone or changed since: not ours to judge now
			}
			removals = append(removals, rc.remove)
			continue
		}
		if obj == nil {
			continue // gone: its delete event covers it
		}
		if b.onItsWay(key, obj, now) && rc.attempts < maxRechecks {
			rc.due, rc.attempts = now.Add(youngMargin), rc.attempts+1
			again = append(again, rc)
			continue
		}
		r, ok := b.opts.Index.Get(rc.rule)
		if !ok || r.Target != key || obj.GetDeletionTimestamp() != nil {
			continue
		}
		if !reconcile.Selects(r, rc.obj.GVR, obj, b.opts.NamespaceLabels) {
			continue
		}
		p, content, err := b.reconcileRender(t, now)(ctx, r, rc.obj.GVR, obj)
		if err != nil {
			continue
		}
		files, err := t.writer.ListFiles(p)
		if err != nil {
			return due, fmt.Errorf("reading the branch's file %s: %w", p, err)
		}
		switch {
		case len(files) == 1 && files[0].Hash == gitstore.BlobHash(content):
			continue
		case len(files) == 1:
			updated++
		default:
			added++
		}
		if old := t.place(placementKey{rule: r.Key, resource: rc.obj.GVR, namespace: obj.GetNamespace(), name: obj.GetName()},
			fileChange{path: p}); old != "" {
			removals = append(removals, old)
		}
		writes = append(writes, gitstore.FileChange{Path: p, Content: content})
	}
	return again, b.commitReconcile(ctx, t, writes, removals, added, updated, "after a recheck of objects that changed shortly before it")
}

// selectedByTarget reports whether a rule of the target selects obj.
func (b *Batcher) selectedByTarget(key types.NamespacedName, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) bool {
	for _, r := range b.opts.Index.Rules() {
		if r.Target == key && reconcile.Selects(r, gvr, obj, b.opts.NamespaceLabels) {
			return true
		}
	}
	return false
}

// commitReconcile commits a reconcile's file changes as one commit by the
// operator, with the counts in its message.
func (b *Batcher) commitReconcile(ctx context.Context, t *target, writes []gitstore.FileChange, removals []string, added, updated int, why string) error {
	if len(writes)+len(removals) == 0 {
		reconcileRuns.WithLabelValues("unchanged").Inc()
		return nil
	}
	counts := fmt.Sprintf("added=%d updated=%d removed=%d", added, updated, len(removals))
	req := gitstore.CommitRequest{
		Author: gitstore.Signature{Name: t.spec.Commit.CommitterName, Email: t.spec.Commit.CommitterEmail},
		Message: fmt.Sprintf("Reconcile %s: %s\n\nThe files now equal what the target's rules select (%s).\n\nReverser-User: %s\nReverser-Operation: RECONCILE\nReverser-Reconcile: %s\nReverser-Target: %s\n",
			t.key, counts, why, ReconcileUser, counts, t.key),
		Changes: writes,
	}
	if strings.TrimSpace(req.Author.Name) == "" {
		req.Author.Name = "gitops-reverser"
	}
	for _, p := range removals {
		req.Changes = append(req.Changes, gitstore.FileChange{Path: p, Delete: true})
	}
	h, err := t.writer.Commit(ctx, req)
	switch {
	case errors.Is(err, gitstore.ErrNoChange):
		reconcileRuns.WithLabelValues("unchanged").Inc()
		return nil
	case err != nil:
		commitErrors.Inc()
		return fmt.Errorf("committing the reconcile: %w", err)
	}
	commits.Inc()
	reconcileRuns.WithLabelValues("committed").Inc()
	reconcileFiles.WithLabelValues("added").Add(float64(added))
	reconcileFiles.WithLabelValues("updated").Add(float64(updated))
	reconcileFiles.WithLabelValues("removed").Add(float64(len(removals)))
	b.opts.Log.Info("committed a reconcile", "target", t.key.String(), "added", added, "updated", updated,
		"removed", len(removals), "commit", h.String())
	if t.unpushed == 0 {
		t.firstUnp = time.Now()
	}
	t.unpushed++
	t.reconcilePush = true
	return nil
}

// DynamicLister lists objects with a dynamic client, page by page.
type DynamicLister struct {
	// Client reaches the API server.
	Client dynamic.Interface
	// PageSize is the limit of each list request; 0 means 500.
	PageSize int64
}

// List implements reconcile.Lister: every page of the listing at once.
func (l DynamicLister) List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) (reconcile.Listing, error) {
	var out reconcile.Listing
	err := l.ListPages(ctx, gvr, namespace, func(page reconcile.Listing) error {
		out.Kind = page.Kind
		out.Items = append(out.Items, page.Items...)
		return nil
	})
	if err != nil {
		return reconcile.Listing{}, err
	}
	return out, nil
}

// ListPages implements reconcile.PageLister. Every page after the first is
// asked with the previous page's continue token, so the API server serves
// it at the first page's resourceVersion: the pages are one snapshot. A
// token that expired (410 Gone) fails with reconcile.ErrListExpired rather
// than going on with the inconsistent token the server offers.
func (l DynamicLister) ListPages(ctx context.Context, gvr schema.GroupVersionResource, namespace string, page func(reconcile.Listing) error) error {
	opts := metav1.ListOptions{Limit: l.PageSize}
	if opts.Limit <= 0 {
		opts.Limit = 500
	}
	kind := ""
	for {
		list, err := l.Client.Resource(gvr).Namespace(namespace).List(ctx, opts)
		if err != nil {
			if opts.Continue != "" && (apierrors.IsResourceExpired(err) || apierrors.IsGone(err)) {
				return fmt.Errorf("listing %s: %w: %w", gvr.String(), reconcile.ErrListExpired, err)
			}
			return fmt.Errorf("listing %s: %w", gvr.String(), err)
		}
		if kind == "" {
			kind = strings.TrimSuffix(list.GetKind(), "List")
		}
		// Drop managedFields: the sanitizer drops them anyway (and the
		// watch's informers never keep them), often a third of an object.
		for i := range list.Items {
			list.Items[i].SetManagedFields(nil)
		}
		if err := page(reconcile.Listing{Kind: kind, Items: list.Items}); err != nil {
			return err
		}
		if list.GetContinue() == "" {
			return nil
		}
		opts.Continue = list.GetContinue()
	}
}

// Get implements ObjectLister.
func (l DynamicLister) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	obj, err := l.Client.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s/%s: %w", gvr.String(), namespace, name, err)
	}
	return obj, nil
}
