package confirm

import (
	"container/heap"
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
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
	informers map[schema.GroupResource]*runningInformer

	// waiting holds, per object, events that wait for the grace and the
	// events behind them, so one object's changes leave in order.
	mu      sync.Mutex
	waiting map[types.UID][]*event
	nWait   int
	due     deadlines
	wake    chan struct{}
	// sinkCtx is the context of Start, handed to the sink.
	sinkCtx context.Context
}

type runningInformer struct {
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
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
		informers: map[schema.GroupResource]*runningInformer{},
		waiting:   map[types.UID][]*event{},
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
// resource the index selects.
func (w *Watcher) Synced() bool {
	want := wantedResources(w.opts.Index.Resources())
	w.infMu.Lock()
	defer w.infMu.Unlock()
	for gr, gvr := range want {
		ri, ok := w.informers[gr]
		if !ok || ri.gvr != gvr || !ri.informer.HasSynced() {
			return false
		}
	}
	return true
}

// wantedResources picks one version per group/resource (the smallest, for
// a stable choice): two informers for one resource would see each event
// twice.
func wantedResources(uses map[schema.GroupVersionResource]rules.ResourceUse) map[schema.GroupResource]schema.GroupVersionResource {
	out := map[schema.GroupResource]schema.GroupVersionResource{}
	for gvr := range uses {
		gr := gvr.GroupResource()
		if have, ok := out[gr]; !ok || gvr.Version < have.Version {
			out[gr] = gvr
		}
	}
	return out
}

func (w *Watcher) syncInformers(ctx context.Context) {
	want := wantedResources(w.opts.Index.Resources())
	w.infMu.Lock()
	defer w.infMu.Unlock()
	for gr, ri := range w.informers {
		if gvr, ok := want[gr]; !ok || gvr != ri.gvr {
			ri.cancel()
			delete(w.informers, gr)
			w.opts.Log.V(1).Info("stopped watching", "resource", ri.gvr.String())
		}
	}
	grs := make([]schema.GroupResource, 0, len(want))
	for gr := range want {
		grs = append(grs, gr)
	}
	sort.Slice(grs, func(i, j int) bool { return grs[i].String() < grs[j].String() })
	for _, gr := range grs {
		if _, ok := w.informers[gr]; ok {
			continue
		}
		gvr := want[gr]
		inf := dynamicinformer.NewFilteredDynamicInformer(w.opts.Client, gvr, "", 0, cache.Indexers{}, nil).Informer()
		if err := inf.SetTransform(trim); err != nil {
			w.opts.Log.Error(err, "setting the informer transform", "resource", gvr.String())
			continue
		}
		if _, err := inf.AddEventHandler(w.handlers(gvr)); err != nil {
			w.opts.Log.Error(err, "adding the event handler", "resource", gvr.String())
			continue
		}
		ictx, cancel := context.WithCancel(ctx)
		w.informers[gr] = &runningInformer{gvr: gvr, informer: inf, cancel: cancel}
		go inf.RunWithContext(ictx)
		w.opts.Log.V(1).Info("watching", "resource", gvr.String())
	}
}

func (w *Watcher) stopInformers() {
	w.infMu.Lock()
	defer w.infMu.Unlock()
	for gr, ri := range w.informers {
		ri.cancel()
		delete(w.informers, gr)
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
			// The initial list is the full reconcile's business; the
			// store only notes where a later DELETE starts from.
			if u, ok := obj.(*unstructured.Unstructured); ok && !isInInitialList {
				w.observe(addedEvent(gvr, u))
			} else if ok {
				w.opts.Store.noteRV(u.GetUID(), u.GetResourceVersion())
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

// observe is the informer handler's path: it decides at once when the
// claims allow, and otherwise leaves the event to the grace worker. It never
// waits.
func (w *Watcher) observe(ev *event) {
	ev.rules = w.rulesFor(ev)
	if len(ev.rules) == 0 || (ev.kind == eventModified && !ev.emit) {
		// No rule selects it, or it hands on nothing: settle its
		// claims so they do not linger.
		w.opts.Store.settle(ev)
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

	user, decided := w.opts.Store.pair(ev, false)
	if decided {
		w.emit(ev, user)
		return
	}
	w.mu.Lock()
	if w.nWait >= w.opts.MaxWaiting {
		w.mu.Unlock()
		user, _ := w.opts.Store.pair(ev, true)
		w.emit(ev, user)
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

		user, decided := w.opts.Store.pair(ev, final)
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

// emit hands on the change of a decided event.
func (w *Watcher) emit(ev *event, user change.User) {
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
	})
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
