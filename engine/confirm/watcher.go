package confirm

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

const (
	// DefaultGrace is how long an event without a fitting claim waits for
	// the webhook's queue before its author is unknown.
	DefaultGrace = time.Second
	// DefaultMaxWaiting bounds the events waiting for the grace.
	DefaultMaxWaiting = 10000
	// DefaultSweepInterval is how often expired claims are swept.
	DefaultSweepInterval = 5 * time.Second
)

// Options configure a Watcher.
type Options struct {
	// Client lists and watches the selected resources.
	Client dynamic.Interface
	// Index supplies the resources to watch and the rules of an event.
	Index *rules.Index
	// Store holds the admission webhook's claims.
	Store *Store
	// Sink receives the confirmed changes.
	Sink change.Sink
	// NamespaceLabels returns a namespace's labels for ClusterWatchRules
	// with a namespace selector.
	NamespaceLabels rules.NamespaceLabeler
	// OnGap is told the resources whose informers were replaced (a
	// namespace's by the cluster-wide one, or back): events between the
	// old informer's stop and the new one's list are not seen, so the
	// caller reconciles the targets that record them. Nil ignores gaps.
	OnGap func(resources []schema.GroupResource)
	// Grace is DefaultGrace when 0.
	Grace time.Duration
	// MaxWaiting is DefaultMaxWaiting when 0; beyond it an event is
	// decided at once.
	MaxWaiting int
	// SweepInterval is DefaultSweepInterval when 0.
	SweepInterval time.Duration
	// Log receives informer and pairing problems (object keys only).
	Log logr.Logger
}

// Watcher runs one dynamic informer per selected resource, pairs every
// event with the store's claims and hands on confirmed changes.
type Watcher struct {
	opts Options
	now  func() time.Time

	infMu     sync.Mutex
	informers map[informerKey]*runningInformer
	// namespaces watches Namespaces while a rule has a namespace
	// selector: a namespace relabelled out of it takes its objects out.
	namespaces *runningInformer

	// waiting holds, per object, events that wait for the grace and the
	// events behind them, so one object's changes leave in order.
	mu      sync.Mutex
	waiting map[types.UID][]*event
	nWait   int
	due     deadlines
	wake    chan struct{}
	// sinkCtx is the context of Start, handed to the sink.
	sinkCtx context.Context

	// handed is, per object, the resourceVersion of the last event the
	// watch is done with (see Handed); handedMu guards it and is never
	// held while the sink is called.
	handedMu sync.Mutex
	handed   map[types.UID]string
}

type runningInformer struct {
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
	// handler is the watcher's handler on the informer; nil in tests.
	handler cache.ResourceEventHandlerRegistration
	cancel  context.CancelFunc
}

// synced reports whether the informer has synced and its handler has
// seen the initial list: the informer's own HasSynced turns true before
// its handlers have been told everything it listed.
func (ri *runningInformer) synced() bool {
	if ri.handler != nil {
		return ri.handler.HasSynced()
	}
	return ri.informer.HasSynced()
}

// NewWatcher returns a Watcher; Client, Index, Store and Sink are required.
func NewWatcher(opts Options) (*Watcher, error) {
	if opts.Client == nil || opts.Index == nil || opts.Store == nil || opts.Sink == nil {
		return nil, errors.New("confirm watcher: Client, Index, Store and Sink are required")
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.MaxWaiting <= 0 {
		opts.MaxWaiting = DefaultMaxWaiting
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	return newWatcher(opts), nil
}

func newWatcher(opts Options) *Watcher {
	return &Watcher{
		opts:      opts,
		now:       time.Now,
		informers: map[informerKey]*runningInformer{},
		waiting:   map[types.UID][]*event{},
		handed:    map[types.UID]string{},
		wake:      make(chan struct{}, 1),
		sinkCtx:   context.Background(),
	}
}

// NeedLeaderElection is true: the leader watches and writes Git.
func (w *Watcher) NeedLeaderElection() bool { return true }

// Start runs the informers, following the index, until ctx ends.
func (w *Watcher) Start(ctx context.Context) error {
	w.sinkCtx = ctx
	changed := w.opts.Index.Subscribe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.runGrace(ctx)
	}()
	sweep := time.NewTicker(w.opts.SweepInterval)
	defer sweep.Stop()
	w.syncInformers(ctx)
	for {
		select {
		case <-ctx.Done():
			w.stopInformers()
			wg.Wait()
			return nil
		case <-changed:
			w.syncInformers(ctx)
		case <-sweep.C:
			w.opts.Store.Sweep()
		}
	}
}

// Synced reports whether an informer runs and has synced for every
// resource and namespace the index selects.
func (w *Watcher) Synced() bool {
	want := wantedInformers(w.opts.Index.Resources())
	needNamespaces := needsNamespaces(w.opts.Index)
	w.infMu.Lock()
	defer w.infMu.Unlock()
	for key, gvr := range want {
		ri, ok := w.informers[key]
		if !ok || ri.gvr != gvr || !ri.synced() {
			return false
		}
	}
	return !needNamespaces || (w.namespaces != nil && w.namespaces.informer.HasSynced())
}

// Handed returns the resourceVersion of the last write of the object uid
// that the watch is done with: handed on to the sink (Record returned),
// found in an informer's initial list (one with a create claim only once
// paired or declined), or judged no rule's; false when no
// informer has shown the object yet (or it was deleted). A write whose
// event is not delivered yet or waits for the webhook's claim is not
// reflected: a reconcile that lists a newer resourceVersion leaves the
// object to the watch.
func (w *Watcher) Handed(uid types.UID) (string, bool) {
	w.handedMu.Lock()
	defer w.handedMu.Unlock()
	rv, ok := w.handed[uid]
	return rv, ok
}

// done notes that the watch is done with the event: its change, if any,
// was handed on.
func (w *Watcher) done(ev *event) {
	uid := uidOf(ev.obj)
	if uid == "" {
		return
	}
	w.handedMu.Lock()
	defer w.handedMu.Unlock()
	if ev.kind == eventDeleted {
		delete(w.handed, uid)
		return
	}
	w.handed[uid] = ev.obj.GetResourceVersion()
}

// forgetHanded drops what Handed knows of the objects of an informer
// that stops; a replacement's initial list notes them again.
func (w *Watcher) forgetHanded(inf cache.SharedIndexInformer) {
	objs := inf.GetStore().List()
	w.handedMu.Lock()
	defer w.handedMu.Unlock()
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			delete(w.handed, u.GetUID())
		}
	}
}

// needsNamespaces reports whether a rule selects namespaces by label.
func needsNamespaces(ix *rules.Index) bool {
	for _, r := range ix.Rules() {
		if r.NamespaceLabels != nil && !r.NamespaceLabels.Empty() {
			return true
		}
	}
	return false
}

// informerKey names one informer: a resource, cluster-wide (namespace "")
// or in one namespace.
type informerKey struct {
	resource  schema.GroupResource
	namespace string
}

// String renders the key for logs.
func (k informerKey) String() string {
	if k.namespace == "" {
		return k.resource.String()
	}
	return k.resource.String() + " in " + k.namespace
}

// wantedInformers picks one version per group/resource (the smallest, for
// a stable choice: two informers for one object would see each event
// twice) and where to watch it: cluster-wide when a ClusterWatchRule
// selects it, else one informer per namespace of the WatchRules that
// select it, so that the cache holds what the rules can select, not the
// cluster.
func wantedInformers(uses map[schema.GroupVersionResource]rules.ResourceUse) map[informerKey]schema.GroupVersionResource {
	version := map[schema.GroupResource]schema.GroupVersionResource{}
	all := map[schema.GroupResource]bool{}
	namespaces := map[schema.GroupResource]map[string]bool{}
	for gvr, use := range uses {
		gr := gvr.GroupResource()
		if have, ok := version[gr]; !ok || gvr.Version < have.Version {
			version[gr] = gvr
		}
		if use.AllNamespaces {
			all[gr] = true
		}
		for ns := range use.Namespaces {
			if namespaces[gr] == nil {
				namespaces[gr] = map[string]bool{}
			}
			namespaces[gr][ns] = true
		}
	}
	out := map[informerKey]schema.GroupVersionResource{}
	for gr, gvr := range version {
		if all[gr] || len(namespaces[gr]) == 0 {
			out[informerKey{resource: gr}] = gvr
			continue
		}
		for ns := range namespaces[gr] {
			out[informerKey{resource: gr, namespace: ns}] = gvr
		}
	}
	return out
}

func (w *Watcher) syncInformers(ctx context.Context) {
	want := wantedInformers(w.opts.Index.Resources())
	w.infMu.Lock()
	defer w.infMu.Unlock()
	// Stop what is no longer wanted first: an informer that overlapped
	// its replacement (a namespace's and the cluster-wide one) would hand
	// on its events twice. Changes in the gap are the full reconcile's.
	stopped := map[schema.GroupResource]bool{}
	for key, ri := range w.informers {
		if gvr, ok := want[key]; !ok || gvr != ri.gvr {
			ri.cancel()
			w.forgetHanded(ri.informer)
			delete(w.informers, key)
			stopped[key.resource] = true
			w.opts.Log.V(1).Info("stopped watching", "resource", ri.gvr.String(), "namespace", key.namespace)
		}
	}
	keys := make([]informerKey, 0, len(want))
	for key := range want {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, key := range keys {
		if _, ok := w.informers[key]; ok {
			continue
		}
		gvr := want[key]
		inf := dynamicinformer.NewFilteredDynamicInformer(w.opts.Client, gvr, key.namespace, 0, cache.Indexers{}, nil).Informer()
		if err := inf.SetTransform(trim); err != nil {
			w.opts.Log.Error(err, "setting the informer transform", "resource", gvr.String(), "namespace", key.namespace)
			continue
		}
		reg, err := inf.AddEventHandler(w.handlers(gvr))
		if err != nil {
			w.opts.Log.Error(err, "adding the event handler", "resource", gvr.String(), "namespace", key.namespace)
			continue
		}
		ictx, cancel := context.WithCancel(ctx)
		w.informers[key] = &runningInformer{gvr: gvr, informer: inf, handler: reg, cancel: cancel}
		go inf.RunWithContext(ictx)
		w.opts.Log.V(1).Info("watching", "resource", gvr.String(), "namespace", key.namespace)
	}
	w.syncNamespaceInformer(ctx)
	// A resource still watched after one of its informers stopped went
	// through a gap: tell the caller, whose reconcile (after the new
	// informers' lists) catches up what happened in it.
	var gaps []schema.GroupResource
	for key := range w.informers {
		if stopped[key.resource] {
			gaps = append(gaps, key.resource)
			delete(stopped, key.resource)
		}
	}
	if len(gaps) > 0 && w.opts.OnGap != nil {
		sort.Slice(gaps, func(i, j int) bool { return gaps[i].String() < gaps[j].String() })
		w.opts.Log.V(1).Info("informers replaced; the targets recording them are reconciled", "resources", fmt.Sprint(gaps))
		w.opts.OnGap(gaps)
	}
}

// namespacesGVR is the resource of Namespaces.
var namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// syncNamespaceInformer runs a Namespace informer while a rule selects
// namespaces by label. infMu is held.
func (w *Watcher) syncNamespaceInformer(ctx context.Context) {
	need := needsNamespaces(w.opts.Index)
	switch {
	case need && w.namespaces == nil:
		inf := dynamicinformer.NewFilteredDynamicInformer(w.opts.Client, namespacesGVR, "", 0, cache.Indexers{}, nil).Informer()
		if err := inf.SetTransform(trim); err != nil {
			w.opts.Log.Error(err, "setting the namespace informer transform")
			return
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(oldObj, newObj interface{}) {
				old, ok1 := oldObj.(*unstructured.Unstructured)
				cur, ok2 := newObj.(*unstructured.Unstructured)
				if ok1 && ok2 {
					w.namespaceRelabelled(cur.GetName(), labels.Set(old.GetLabels()), labels.Set(cur.GetLabels()))
				}
			},
		}); err != nil {
			w.opts.Log.Error(err, "adding the namespace event handler")
			return
		}
		ictx, cancel := context.WithCancel(ctx)
		w.namespaces = &runningInformer{gvr: namespacesGVR, informer: inf, cancel: cancel}
		go inf.RunWithContext(ictx)
	case !need && w.namespaces != nil:
		w.namespaces.cancel()
		w.namespaces = nil
	}
}

// namespaceRelabelled hands on, for every rule whose namespace selector
// matched the namespace's old labels and does not match the new ones, a
// DELETE (LeftSelection) of each object of the namespace that the rule
// selected. The author is unknown: the webhook does not hear Namespace
// writes unless a rule records Namespaces, and the objects themselves did
// not change.
func (w *Watcher) namespaceRelabelled(namespace string, old, cur labels.Set) {
	if labels.Equals(old, cur) {
		return
	}
	now := w.now()
	for _, r := range w.opts.Index.Rules() {
		sel := r.NamespaceLabels
		if sel == nil || sel.Empty() || !sel.Matches(old) || sel.Matches(cur) ||
			(len(r.Operations) > 0 && !r.Operations[v1alpha1.OperationDelete]) {
			continue
		}
		for _, res := range r.Resources {
			if !res.Namespaced {
				continue
			}
			for _, obj := range w.cached(informerKey{resource: res.GVR.GroupResource()}, namespace) {
				if r.Labels != nil && !r.Labels.Empty() && !r.Labels.Matches(labels.Set(obj.GetLabels())) {
					continue
				}
				confirmedUnattributed.Inc()
				unknownAuthorTotal.Inc()
				w.opts.Sink.Record(w.sinkCtx, change.Change{
					Operation:       v1alpha1.OperationDelete,
					Resource:        res.GVR,
					Namespace:       namespace,
					Name:            obj.GetName(),
					UID:             obj.GetUID(),
					ResourceVersion: obj.GetResourceVersion(),
					Object:          obj,
					User:            change.Unknown,
					Rules:           []*rules.Rule{r},
					Observed:        now,
					LeftSelection:   true,
				})
			}
		}
	}
}

// cached returns copies of the objects of namespace that the informer of
// key holds.
func (w *Watcher) cached(key informerKey, namespace string) []*unstructured.Unstructured {
	w.infMu.Lock()
	ri, ok := w.informers[key]
	w.infMu.Unlock()
	if !ok {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, o := range ri.informer.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok && u.GetNamespace() == namespace {
			out = append(out, u.DeepCopy())
		}
	}
	return out
}

// Informers returns, for each resource watched, the namespaces its
// informers cover ("" for cluster-wide), sorted; for tests and
// diagnostics.
func (w *Watcher) Informers() map[schema.GroupVersionResource][]string {
	w.infMu.Lock()
	defer w.infMu.Unlock()
	out := map[schema.GroupVersionResource][]string{}
	for key, ri := range w.informers {
		out[ri.gvr] = append(out[ri.gvr], key.namespace)
	}
	for _, ns := range out {
		sort.Strings(ns)
	}
	return out
}

func (w *Watcher) stopInformers() {
	w.infMu.Lock()
	defer w.infMu.Unlock()
	for key, ri := range w.informers {
		ri.cancel()
		delete(w.informers, key)
	}
	if w.namespaces != nil {
		w.namespaces.cancel()
		w.namespaces = nil
	}
}

// trim drops managedFields on ingest: they are most of an object's size
// and nothing downstream reads them.
func trim(obj interface{}) (interface{}, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}

func (w *Watcher) handlers(gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj interface{}, isInInitialList bool) {
			u, ok := obj.(*unstructured.Unstructured)
			switch {
			case !ok:
			case !isInInitialList:
				w.observe(addedEvent(gvr, u))
			case w.opts.Store.claimsCreate(gvr, u):
				// Created just before this informer started, so its
				// creation reached no watch: paired with the claim as
				// a live event, else left to the reconcile
				// (Store.pairListed). Done only once decided.
				ev := addedEvent(gvr, u)
				ev.listed = true
				w.observe(ev)
			default:
				// The rest of the initial list is the full reconcile's
				// business; the store only notes where a later DELETE
				// starts from.
				w.opts.Store.noteRV(u.GetUID(), u.GetResourceVersion())
				w.done(addedEvent(gvr, u))
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			old, ok1 := oldObj.(*unstructured.Unstructured)
			cur, ok2 := newObj.(*unstructured.Unstructured)
			if ok1 && ok2 && old.GetResourceVersion() != cur.GetResourceVersion() {
				w.observe(modifiedEvent(gvr, old, cur))
			}
		},
		DeleteFunc: func(obj interface{}) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				w.observe(deletedEvent(gvr, u))
			}
		},
	}
}

func addedEvent(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) *event {
	return &event{kind: eventAdded, resource: gvr, obj: obj, op: v1alpha1.OperationCreate, emit: true}
}

// modifiedEvent tells a content change from the start of a deletion that
// finalizers hold (only deletionTimestamp set: it names the deleter, the
// file stays) and from finalizers being removed on the way out (nothing to
// hand on: the deleter's change removes the file).
func modifiedEvent(gvr schema.GroupVersionResource, old, cur *unstructured.Unstructured) *event {
	ev := &event{kind: eventModified, resource: gvr, obj: cur, old: old, oldRV: old.GetResourceVersion(), op: v1alpha1.OperationUpdate, emit: true}
	switch {
	case old.GetDeletionTimestamp() == nil && cur.GetDeletionTimestamp() != nil:
		ev.kind, ev.op, ev.emit = eventDeletionStarted, v1alpha1.OperationDelete, false
	case cur.GetDeletionTimestamp() != nil:
		ev.emit = false
	}
	return ev
}

func deletedEvent(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) *event {
	return &event{kind: eventDeleted, resource: gvr, obj: obj, op: v1alpha1.OperationDelete, emit: true}
}

// rulesFor returns the rules that select the event's change.
func (w *Watcher) rulesFor(ev *event) []*rules.Rule {
	return w.opts.Index.Match(rules.Request{
		Resource:  ev.resource.GroupResource(),
		Namespace: ev.obj.GetNamespace(),
		Labels:    labels.Set(ev.obj.GetLabels()),
		Operation: ev.op,
	}, w.opts.NamespaceLabels)
}

// leftFor returns the rules a MODIFIED event moved the object out of: they
// selected its old labels and do not select the new ones.
func (w *Watcher) leftFor(ev *event) []*rules.Rule {
	if ev.kind != eventModified || !ev.emit || ev.old == nil {
		return nil
	}
	return w.opts.Index.Left(ev.resource.GroupResource(), ev.obj.GetNamespace(),
		labels.Set(ev.old.GetLabels()), labels.Set(ev.obj.GetLabels()), w.opts.NamespaceLabels)
}

// observe is the informer handler's path: it decides at once when the
// claims allow, and otherwise leaves the event to the grace worker. It never
// waits.
func (w *Watcher) observe(ev *event) {
	ev.rules = w.rulesFor(ev)
	ev.left = w.leftFor(ev)
	if len(ev.rules) == 0 && len(ev.left) == 0 && ev.emit && ev.kind != eventDeleted && w.namespaceUnknown(ev) {
		// Its namespace was just created (one apply writes both): the
		// operator's cache of namespaces has not heard of it yet. The
		// event waits its grace, its claims kept, and is selected again.
		ev.reselect = true
	}
	if (len(ev.rules) == 0 && len(ev.left) == 0 && !ev.reselect) || (ev.kind == eventModified && !ev.emit) {
		// No rule selects it, or it hands on nothing: settle its
		// claims so they do not linger.
		w.opts.Store.settle(ev)
		w.done(ev)
		return
	}
	uid := uidOf(ev.obj)
	now := w.now()
	ev.observed = now
	w.mu.Lock()
	if q, ok := w.waiting[uid]; ok && w.nWait < w.opts.MaxWaiting {
		w.waiting[uid] = append(q, ev)
		w.nWait++
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()

	if !ev.reselect {
		user, decided := w.opts.Store.pair(ev, false)
		if decided {
			w.emit(ev, user)
			return
		}
	}
	w.mu.Lock()
	if w.nWait >= w.opts.MaxWaiting {
		w.mu.Unlock()
		w.decideNow(ev)
		return
	}
	if q, ok := w.waiting[uid]; ok {
		w.waiting[uid] = append(q, ev)
	} else {
		w.waiting[uid] = []*event{ev}
		heap.Push(&w.due, deadline{at: now.Add(w.opts.Grace), uid: uid})
	}
	w.nWait++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// decideNow decides ev at once (the waiting events are too many).
func (w *Watcher) decideNow(ev *event) {
	if ev.reselect {
		w.reselect(ev, true)
	}
	user := change.Unknown
	if ev.emit {
		user, _ = w.opts.Store.pair(ev, true)
	}
	w.emit(ev, user)
}

// reselect asks again which rules select an event that waited for its
// namespace's labels. It reports false when it must wait on (not final,
// namespace still unknown). With no rule when final, it settles the
// event's claims and marks it to hand on nothing (emit false); the caller
// then only notes it done.
func (w *Watcher) reselect(ev *event, final bool) bool {
	ev.rules = w.rulesFor(ev)
	ev.left = w.leftFor(ev)
	if len(ev.rules) > 0 || len(ev.left) > 0 {
		ev.reselect = false
		return true
	}
	if !final && w.namespaceUnknown(ev) {
		return false
	}
	w.opts.Store.settle(ev)
	ev.emit = false
	return true
}

// namespaceUnknown reports whether a rule with a namespace selector has the
// event's resource and the namespace's labels are not known (yet).
func (w *Watcher) namespaceUnknown(ev *event) bool {
	ns := ev.obj.GetNamespace()
	if ns == "" || w.opts.NamespaceLabels == nil {
		return false
	}
	for _, r := range w.opts.Index.ForResource(ev.resource.GroupResource()) {
		if r.NamespaceLabels != nil && !r.NamespaceLabels.Empty() {
			_, ok := w.opts.NamespaceLabels(ns)
			return !ok
		}
	}
	return false
}

// runGrace decides waiting events when their grace ends, then the events of
// the same object behind them, in order.
func (w *Watcher) runGrace(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.mu.Lock()
		var wait time.Duration = -1
		var uid types.UID
		if w.due.Len() > 0 {
			if d := w.due[0].at.Sub(w.now()); d > 0 {
				wait = d
			} else {
				uid = heap.Pop(&w.due).(deadline).uid
			}
		}
		w.mu.Unlock()
		if uid != "" {
			w.drain(uid, true)
			continue
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// drain decides the head event of uid (final when its grace is over) and
// the events behind it until one must wait again.
func (w *Watcher) drain(uid types.UID, final bool) {
	for {
		w.mu.Lock()
		q := w.waiting[uid]
		if len(q) == 0 {
			delete(w.waiting, uid)
			w.mu.Unlock()
			return
		}
		ev := q[0]
		w.mu.Unlock()

		if ev.reselect && !w.reselect(ev, final) {
			w.mu.Lock()
			heap.Push(&w.due, deadline{at: ev.observed.Add(w.opts.Grace), uid: uid})
			w.mu.Unlock()
			return
		}
		user, decided := change.Unknown, true // no rule after all: settled
		if ev.emit {
			user, decided = w.opts.Store.pair(ev, final)
		}
		if !decided {
			w.mu.Lock()
			heap.Push(&w.due, deadline{at: ev.observed.Add(w.opts.Grace), uid: uid})
			w.mu.Unlock()
			return
		}
		w.emit(ev, user)
		w.mu.Lock()
		q = w.waiting[uid]
		w.waiting[uid] = q[1:]
		w.nWait--
		w.mu.Unlock()
		final = false
	}
}

// emit hands on the change of a decided event, and notes the watch done
// with it once the sink has it.
func (w *Watcher) emit(ev *event, user change.User) {
	defer w.done(ev)
	if !ev.emit {
		return
	}
	if user.IsUnknown() {
		user = change.Unknown
		confirmedUnattributed.Inc()
		unknownAuthorTotal.Inc()
	} else {
		confirmedAttributed.Inc()
	}
	var span trace.SpanContext
	if telemetry.Tracing() {
		// A child of the claim's admission span; the root of the trace
		// when no claim named the author.
		span = telemetry.Record(user.Claim, telemetry.SpanConfirm, ev.observed, time.Now(),
			append(telemetry.ObjectAttrs(ev.resource, ev.obj.GetNamespace(), ev.obj.GetName(), string(ev.op)),
				telemetry.AttrKind.String(ev.obj.GetKind()), telemetry.AttrAttributed.Bool(!user.IsUnknown()))...)
	}
	if len(ev.rules) > 0 {
		w.opts.Sink.Record(w.sinkCtx, change.Change{
			Operation:       ev.op,
			Resource:        ev.resource,
			Namespace:       ev.obj.GetNamespace(),
			Name:            ev.obj.GetName(),
			UID:             ev.obj.GetUID(),
			ResourceVersion: ev.obj.GetResourceVersion(),
			Object:          ev.obj,
			OldObject:       ev.old,
			User:            user,
			Rules:           ev.rules,
			Observed:        ev.observed,
			Trace:           span,
		})
	}
	if len(ev.left) > 0 {
		// The update moved the object out of these rules: for them it is
		// a deletion by the same user, of the file its old state wrote.
		w.opts.Sink.Record(w.sinkCtx, change.Change{
			Operation:       v1alpha1.OperationDelete,
			Resource:        ev.resource,
			Namespace:       ev.obj.GetNamespace(),
			Name:            ev.obj.GetName(),
			UID:             ev.obj.GetUID(),
			ResourceVersion: ev.obj.GetResourceVersion(),
			Object:          ev.old,
			User:            user,
			Rules:           ev.left,
			Observed:        ev.observed,
			LeftSelection:   true,
			Trace:           span,
		})
	}
}

// deadline is when the head event of an object stops waiting.
type deadline struct {
	at  time.Time
	uid types.UID
}

// deadlines is a min-heap by time.
type deadlines []deadline

// Len implements heap.Interface with Less, Swap, Push and Pop.
func (d deadlines) Len() int { return len(d) }

// Less orders by deadline.
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }

// Swap swaps two deadlines.
func (d deadlines) Swap(i, j int) { d[i], d[j] = d[j], d[i] }

// Push adds a deadline.
func (d *deadlines) Push(x interface{}) { *d = append(*d, x.(deadline)) }

// Pop removes the last deadline.
func (d *deadlines) Pop() interface{} {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}
