package confirm

import (
	"container/list"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

const (
	// DefaultMaxPending bounds the store when StoreOptions.MaxPending is 0.
	DefaultMaxPending = 50000
	// DefaultTTL is how long a pending change waits for its watch event.
	DefaultTTL = 60 * time.Second
	// DefaultDeleterTTL is how long the user who started a deletion is
	// remembered while finalizers hold the object.
	DefaultDeleterTTL = time.Hour
	// DefaultMaxDeleters bounds the remembered deleters.
	DefaultMaxDeleters = 10000
	// DefaultMaxTaints bounds the taints (keys of lost claims). A taint
	// costs about 200 bytes.
	DefaultMaxTaints = 50000
)

// StoreOptions configure a Store.
type StoreOptions struct {
	// MaxPending bounds the pending changes; the oldest is evicted (and
	// counted) when a new one would exceed it. DefaultMaxPending when 0.
	MaxPending int
	// TTL after which an unconfirmed pending change expires (and is
	// counted). DefaultTTL when 0.
	TTL time.Duration
	// DeleterTTL bounds how long a deleter is remembered. DefaultDeleterTTL
	// when 0.
	DeleterTTL time.Duration
	// MaxDeleters bounds the remembered deleters. DefaultMaxDeleters when 0.
	MaxDeleters int
	// MaxTaints bounds the taints. A taint evicted before its TTL makes
	// every change decided in the rest of that TTL unknown (it may have
	// been the one the taint marked). DefaultMaxTaints when 0.
	MaxTaints int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// slotKind tells the indexes of the store apart.
type slotKind uint8

const (
	slotUpdate       slotKind = iota + 1 // uid + old resourceVersion
	slotCreate                           // uid
	slotCreateByName                     // resource + namespace + name
	slotDelete                           // uid + the resourceVersion the delete starts from
)

// slot is the key a pending change is filed under.
type slot struct {
	kind      slotKind
	uid       types.UID
	rv        string
	resource  schema.GroupResource
	namespace string
	name      string
}

type entry struct {
	p     change.Pending
	slot  slot
	added time.Time
	elem  *list.Element
}

// taint marks the slot of a lost claim; taints use slotUpdate for every
// write from (uid, resourceVersion), UPDATE and DELETE alike.
type taint struct {
	slot  slot
	added time.Time
	elem  *list.Element
}

type deleter struct {
	user  change.User
	added time.Time
	elem  *list.Element
}

// Store holds pending changes until a watch event confirms them or they
// expire. It is bounded in size, safe for concurrent use, and each
// operation costs O(claims for one object).
type Store struct {
	opts StoreOptions

	mu       sync.Mutex
	order    list.List // *entry, oldest first
	slots    map[slot][]*entry
	byUID    map[types.UID]map[slot]struct{} // non-empty slots per uid, to drop an object's claims at once
	deleters map[types.UID]*deleter
	delOrder list.List // types.UID, oldest first

	taints     map[slot]*taint
	taintOrder list.List // *taint, oldest first
	// blindUntil: a taint was evicted before its TTL, so until then any
	// change may be the one it marked, and every decision is unknown.
	blindUntil time.Time
	// lastRV is the last resourceVersion the watch saw of each object:
	// the resourceVersion a DELETE starts from (the watch's DELETED
	// event carries the deletion's own resourceVersion instead).
	lastRV map[types.UID]string
	// inFlight counts requests queued at the webhook per key: while one
	// is, no other claim may name the author of the key's write.
	inFlight map[slot]int
}

// NewStore returns an empty Store.
func NewStore(opts StoreOptions) *Store {
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.DeleterTTL <= 0 {
		opts.DeleterTTL = DefaultDeleterTTL
	}
	if opts.MaxDeleters <= 0 {
		opts.MaxDeleters = DefaultMaxDeleters
	}
	if opts.MaxTaints <= 0 {
		opts.MaxTaints = DefaultMaxTaints
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		opts:     opts,
		slots:    map[slot][]*entry{},
		byUID:    map[types.UID]map[slot]struct{}{},
		deleters: map[types.UID]*deleter{},
		taints:   map[slot]*taint{},
		lastRV:   map[types.UID]string{},
		inFlight: map[slot]int{},
	}
}

// slotOf files a pending change; ok is false for a claim that no event
// could ever confirm (no uid, no old resourceVersion).
func slotOf(p change.Pending) (slot, bool) {
	switch p.Operation {
	case v1alpha1.OperationUpdate:
		if p.UID == "" || p.OldResourceVersion == "" {
			return slot{}, false
		}
		return slot{kind: slotUpdate, uid: p.UID, rv: p.OldResourceVersion}, true
	case v1alpha1.OperationCreate:
		if p.UID != "" {
			return slot{kind: slotCreate, uid: p.UID}, true
		}
		if p.Name == "" {
			return slot{}, false
		}
		return slot{kind: slotCreateByName, resource: p.Resource.GroupResource(), namespace: p.Namespace, name: p.Name}, true
	case v1alpha1.OperationDelete:
		if p.UID == "" || p.OldResourceVersion == "" {
			return slot{}, false
		}
		return slot{kind: slotDelete, uid: p.UID, rv: p.OldResourceVersion}, true
	}
	return slot{}, false
}

// taintSlots are the slots a lost claim marks. With the operation unknown
// it marks every slot its keys allow.
func taintSlots(t change.Taint) []slot {
	var out []slot
	op := t.Operation
	if t.UID != "" && t.OldResourceVersion != "" && op != v1alpha1.OperationCreate {
		out = append(out, slot{kind: slotUpdate, uid: t.UID, rv: t.OldResourceVersion})
	}
	if op == v1alpha1.OperationCreate || op == "" {
		if t.UID != "" {
			out = append(out, slot{kind: slotCreate, uid: t.UID})
		}
		if t.Name != "" {
			out = append(out, slot{kind: slotCreateByName, resource: t.Resource.GroupResource(), namespace: t.Namespace, name: t.Name})
		}
	}
	return out
}

// taintSlotOf is the taint slot of a claim's slot.
func taintSlotOf(sl slot) slot {
	if sl.kind == slotDelete {
		sl.kind = slotUpdate
	}
	return sl
}

// AddTaint marks the write of a claim that was lost, so that the change
// it belongs to is handed on as unknown. It implements
// admission.PendingRecorder; t without a usable key is ignored.
func (s *Store) AddTaint(t change.Taint) {
	slots := taintSlots(t)
	if len(slots) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.expireLocked(now)
	for _, sl := range slots {
		s.taintLocked(sl, now)
	}
	taintsAddedTotal.Inc()
}

// taintLocked files (or refreshes) a taint added at when.
func (s *Store) taintLocked(sl slot, when time.Time) {
	if t, ok := s.taints[sl]; ok {
		if when.After(t.added) {
			t.added = when
			s.taintOrder.MoveToBack(t.elem)
		}
		return
	}
	for s.taintOrder.Len() >= s.opts.MaxTaints {
		oldest := s.taintOrder.Front().Value.(*taint)
		if until := oldest.added.Add(s.opts.TTL); until.After(s.blindUntil) {
			s.blindUntil = until
		}
		s.removeTaintLocked(oldest)
		taintsEvictedTotal.Inc()
	}
	t := &taint{slot: sl, added: when}
	t.elem = s.taintOrder.PushBack(t)
	s.taints[sl] = t
}

func (s *Store) removeTaintLocked(t *taint) {
	s.taintOrder.Remove(t.elem)
	delete(s.taints, t.slot)
}

// tainted reports whether a claim for the write was lost, or the store is
// blind (a taint was evicted), and drops the taints: one write settles
// them.
func (s *Store) tainted(slots ...slot) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	hit := s.opts.Now().Before(s.blindUntil)
	for _, sl := range slots {
		if t, ok := s.taints[sl]; ok {
			hit = true
			s.removeTaintLocked(t)
		}
	}
	return hit
}

// ClaimQueued notes that a request claiming the key's write waits in the
// webhook's queue: until ClaimDone, the write is not attributed from
// other claims alone. It implements admission.PendingRecorder.
func (s *Store) ClaimQueued(key change.Taint) {
	slots := taintSlots(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range slots {
		s.inFlight[sl]++
	}
}

// ClaimDone notes that a queued request left the queue (recorded, found
// unselected, or tainted). It implements admission.PendingRecorder.
func (s *Store) ClaimDone(key change.Taint) {
	slots := taintSlots(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range slots {
		if s.inFlight[sl]--; s.inFlight[sl] <= 0 {
			delete(s.inFlight, sl)
		}
	}
}

// queued reports whether a request for one of the slots waits in the
// webhook's queue.
func (s *Store) queued(slots ...slot) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range slots {
		if s.inFlight[sl] > 0 {
			return true
		}
	}
	return false
}

// noteRV records the last resourceVersion the watch saw of an object.
func (s *Store) noteRV(uid types.UID, rv string) {
	if uid == "" || rv == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRV[uid] = rv
}

// lastRVOf returns the last resourceVersion the watch saw of uid.
func (s *Store) lastRVOf(uid types.UID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRV[uid]
}

// AddPending files a pending change. It implements
// admission.PendingRecorder.
func (s *Store) AddPending(p change.Pending) {
	sl, ok := slotOf(p)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.expireLocked(now)
	for s.order.Len() >= s.opts.MaxPending {
		// An evicted claim is a lost claim: its write must not be
		// paired with another claim alone.
		oldest := s.order.Front().Value.(*entry)
		s.removeLocked(oldest)
		s.taintLocked(taintSlotOf(oldest.slot), oldest.added)
		pendingEvictedTotal.Inc()
	}
	e := &entry{p: p, slot: sl, added: now}
	e.elem = s.order.PushBack(e)
	s.slots[sl] = append(s.slots[sl], e)
	if sl.uid != "" {
		if s.byUID[sl.uid] == nil {
			s.byUID[sl.uid] = map[slot]struct{}{}
		}
		s.byUID[sl.uid][sl] = struct{}{}
	}
}

// Len returns the number of pending changes.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// Sweep expires pending changes older than the TTL and deleters older
// than DeleterTTL. The Watcher calls it periodically; AddPending also
// expires as it goes.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.expireLocked(now)
	for f := s.delOrder.Front(); f != nil; f = s.delOrder.Front() {
		uid := f.Value.(types.UID)
		if now.Sub(s.deleters[uid].added) < s.opts.DeleterTTL {
			break
		}
		s.forgetDeleterLocked(uid)
	}
}

// expireLocked drops entries and taints past the TTL; both are in
// insertion order, so it stops at the first live one.
func (s *Store) expireLocked(now time.Time) {
	for f := s.taintOrder.Front(); f != nil; f = s.taintOrder.Front() {
		t := f.Value.(*taint)
		if now.Sub(t.added) < s.opts.TTL {
			break
		}
		s.removeTaintLocked(t)
	}
	for f := s.order.Front(); f != nil; f = s.order.Front() {
		e := f.Value.(*entry)
		if now.Sub(e.added) < s.opts.TTL {
			return
		}
		s.removeLocked(e)
		pendingExpiredTotal.Inc()
	}
}

func (s *Store) removeLocked(e *entry) {
	s.order.Remove(e.elem)
	list := s.slots[e.slot]
	for i, x := range list {
		if x == e {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) > 0 {
		s.slots[e.slot] = list
		return
	}
	delete(s.slots, e.slot)
	if uid := e.slot.uid; uid != "" {
		delete(s.byUID[uid], e.slot)
		if len(s.byUID[uid]) == 0 {
			delete(s.byUID, uid)
		}
	}
}

// claims returns copies of the pending changes filed under the slots.
func (s *Store) claims(slots ...slot) []change.Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []change.Pending
	for _, sl := range slots {
		for _, e := range s.slots[sl] {
			out = append(out, e.p)
		}
	}
	return out
}

// consume drops every pending change filed under the slots: a persisted
// write from them settles every attempt.
func (s *Store) consume(slots ...slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range slots {
		for _, e := range append([]*entry(nil), s.slots[sl]...) {
			s.removeLocked(e)
		}
	}
}

// dropObject drops every pending change of a deleted object (such as the
// update that removed its last finalizer) and its remembered deleter.
func (s *Store) dropObject(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetDeleterLocked(uid)
	delete(s.lastRV, uid)
	for sl := range s.byUID[uid] {
		for _, e := range append([]*entry(nil), s.slots[sl]...) {
			s.removeLocked(e)
		}
	}
}

// rememberDeleter records who started the deletion of uid.
func (s *Store) rememberDeleter(uid types.UID, u change.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetDeleterLocked(uid)
	for s.delOrder.Len() >= s.opts.MaxDeleters {
		s.forgetDeleterLocked(s.delOrder.Front().Value.(types.UID))
	}
	d := &deleter{user: u, added: s.opts.Now()}
	d.elem = s.delOrder.PushBack(uid)
	s.deleters[uid] = d
}

// deleterOf returns the remembered deleter of uid.
func (s *Store) deleterOf(uid types.UID) (change.User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deleters[uid]
	if !ok {
		return change.User{}, false
	}
	return d.user, true
}

func (s *Store) forgetDeleterLocked(uid types.UID) {
	d, ok := s.deleters[uid]
	if !ok {
		return
	}
	s.delOrder.Remove(d.elem)
	delete(s.deleters, uid)
}
