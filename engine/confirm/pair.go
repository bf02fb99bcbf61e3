package confirm

import (
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// eventKind is what the watch observed.
type eventKind uint8

const (
	eventAdded eventKind = iota + 1
	eventModified
	// eventDeletionStarted is a MODIFIED event that only set
	// deletionTimestamp: finalizers hold the object.
	eventDeletionStarted
	eventDeleted
)

// event is one watch event being paired with claims.
type event struct {
	kind     eventKind
	resource schema.GroupVersionResource
	obj      *unstructured.Unstructured // persisted state; last state for a delete
	old      *unstructured.Unstructured // the predecessor (MODIFIED)
	oldRV    string                     // the predecessor's resourceVersion (MODIFIED)
	op       v1alpha1.Operation         // operation of the handed-on change
	emit     bool                       // false: settles claims, hands on nothing
	rules    []*rules.Rule              // rules that select the change
	left     []*rules.Rule              // rules the update moved the object out of (MODIFIED)
	observed time.Time                  // when the watch delivered it
	// listed marks an ADDED event from an informer's initial list that the
	// webhook holds a create claim for (see Store.pairListed).
	listed bool
	// reselect marks an event no rule selected only because its
	// namespace's labels were not known yet: its rules are asked again
	// when its grace ends.
	reselect bool

	fp     string
	fpDone bool
}

// fingerprint is computed once per event, and only when a claim needs it.
func (ev *event) fingerprint() string {
	if !ev.fpDone {
		ev.fpDone = true
		if fp, err := transform.Fingerprint(ev.obj); err == nil {
			ev.fp = fp
		}
	}
	return ev.fp
}

// persisted reports whether the claim describes the persisted object:
// same fingerprint, or for a scale write the same replicas.
func (ev *event) persisted(p change.Pending) bool {
	if p.Fingerprint == "" {
		return false
	}
	if p.SubResource == admission.SubresourceScale {
		replicas, found, err := unstructured.NestedInt64(ev.obj.Object, "spec", "replicas")
		return err == nil && found && admission.ScaleFingerprint(replicas) == p.Fingerprint
	}
	fp := ev.fingerprint()
	return fp != "" && fp == p.Fingerprint
}

// pair decides the author of ev from the store's claims. decided is false
// when no claim fits yet and final is false: the caller waits the grace and
// asks again with final true, which always decides. A write whose claim was
// lost (a taint) is decided at once, unknown: no other claim may name it.
func (s *Store) pair(ev *event, final bool) (user change.User, decided bool) {
	uid := ev.obj.GetUID()
	switch ev.kind {
	case eventAdded:
		s.noteRV(uid, ev.obj.GetResourceVersion())
		slots := createSlots(ev.resource, ev.obj)
		if ev.listed {
			return s.pairListed(ev, slots, final)
		}
		user, decided = choose(filter(s.claims(slots...), ev.persisted), final)
		user, decided = s.verdict(user, decided, final, slots...)
		if decided {
			s.consume(slots...)
		}
		return user, decided

	case eventModified:
		s.noteRV(uid, ev.obj.GetResourceVersion())
		sl := slot{kind: slotUpdate, uid: uid, rv: ev.oldRV}
		user, decided = choose(filter(s.claims(sl), ev.persisted), final)
		user, decided = s.verdict(user, decided, final, sl)
		if decided {
			// Only one write can leave a resourceVersion: every other
			// attempt from it failed.
			s.consume(sl)
		}
		return user, decided

	case eventDeletionStarted:
		s.noteRV(uid, ev.obj.GetResourceVersion())
		sl := slot{kind: slotDelete, uid: uid, rv: ev.oldRV}
		from := slot{kind: slotUpdate, uid: uid, rv: ev.oldRV}
		user, decided = choose(s.claims(sl), final)
		user, decided = s.verdict(user, decided, final, from)
		if decided {
			s.rememberDeleter(uid, user)
			s.consume(sl, from)
		}
		return user, decided

	case eventDeleted:
		// The user who started the deletion wins over later DELETE calls
		// on an object that finalizers hold: the first one deleted it.
		if u, ok := s.deleterOf(uid); ok {
			s.dropObject(uid)
			return u, true
		}
		// A DELETE claim counts only when it starts from the last
		// resourceVersion the watch saw: a claim from an older version
		// (a delete that conflicted, was denied, or was forged) never
		// names the deleter of a later one. The DELETED event itself
		// carries the deletion's resourceVersion, not that one.
		rv := s.lastRVOf(uid)
		var claims []change.Pending
		from := slot{kind: slotUpdate, uid: uid, rv: rv}
		if rv != "" {
			claims = s.claims(slot{kind: slotDelete, uid: uid, rv: rv})
		}
		user, decided = choose(claims, final)
		user, decided = s.verdict(user, decided, final, from)
		if decided {
			s.dropObject(uid)
		}
		return user, decided
	}
	return change.Unknown, true
}

// createSlots are the slots of the claims that may have created obj.
func createSlots(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) []slot {
	return []slot{{kind: slotCreate, uid: obj.GetUID()}, {
		kind: slotCreateByName, resource: gvr.GroupResource(),
		namespace: obj.GetNamespace(), name: obj.GetName(),
	}}
}

// claimsCreate reports whether a create claim of obj is filed or queued at
// the webhook: only then may an informer's initial list hand obj on as a
// live change (pairListed). Map lookups only, so that a list of 20,000
// objects costs 20,000 of them.
func (s *Store) claimsCreate(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) bool {
	slots := createSlots(gvr, obj)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range slots {
		if len(s.slots[sl]) > 0 || s.inFlight[sl] > 0 {
			return true
		}
	}
	return false
}

// pairListed decides an object of an informer's initial list that the
// webhook claimed the creation of: written just before the informer
// started (it replaced another, or a new rule or namespace needs it), its
// creation reached no watch. It pairs as the live ADDED event would, under
// stricter terms, since the list shows the object's current state and not
// its creation: the claims filed under the create slots whose fingerprint
// equals the listed object's must all name one known user; no claim of a
// later write of the object may be filed (the listed state may be that
// write's); a lost claim for the creation (taint) or a claim still queued
// when final declines. A declined object (ev.emit false) hands on nothing:
// it is the reconcile's, as any listed object. Without a fitting claim yet
// and with one queued at the webhook, it waits the grace (decided false).
// Whatever it decides consumes the create claims: the object's creation
// is settled, so no claim can count twice.
func (s *Store) pairListed(ev *event, slots []slot, final bool) (change.User, bool) {
	user := change.Unknown
	if ev.obj.GetDeletionTimestamp() == nil && !s.claimsOther(ev.obj.GetUID(), slots) {
		matching := filter(s.claims(slots...), ev.persisted)
		if len(matching) == 0 && !final && s.queued(slots...) {
			return change.Unknown, false
		}
		if len(matching) > 0 {
			var decided bool
			user, decided = choose(matching, true)
			user, decided = s.verdict(user, decided, final, slots...)
			if !decided {
				return change.Unknown, false
			}
		}
	}
	s.consume(slots...)
	if user.IsUnknown() {
		ev.emit = false
		listedDeclinedTotal.Inc()
		return change.Unknown, true
	}
	listedPairedTotal.Inc()
	return user, true
}

// claimsOther reports whether a claim of the object uid is filed under a
// slot other than the given ones (an update or delete).
func (s *Store) claimsOther(uid types.UID, slots []slot) bool {
	if uid == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sl := range s.byUID[uid] {
		other := true
		for _, mine := range slots {
			if sl == mine {
				other = false
			}
		}
		if other {
			return true
		}
	}
	return false
}

// verdict checks a decision against lost and queued claims of the write
// (keys in the taint slots): a lost claim (a taint, or a blind store)
// makes it unknown at once; a claim still queued at the webhook makes it
// wait, and unknown when final. A forged claim thus never names the author
// while the real claim is dropped or stuck behind a flood.
func (s *Store) verdict(user change.User, decided, final bool, keys ...slot) (change.User, bool) {
	switch {
	case s.tainted(keys...):
		taintedChangesTotal.Inc()
		return change.Unknown, true
	case s.queued(keys...):
		if !final {
			return change.Unknown, false
		}
		taintedChangesTotal.Inc()
		return change.Unknown, true
	}
	return user, decided
}

// settle drops the claims an event no rule selects has settled, so that
// they do not linger until they expire.
func (s *Store) settle(ev *event) {
	uid := ev.obj.GetUID()
	switch ev.kind {
	case eventAdded:
		s.noteRV(uid, ev.obj.GetResourceVersion())
		s.consume(createSlots(ev.resource, ev.obj)...)
	case eventModified, eventDeletionStarted:
		s.noteRV(uid, ev.obj.GetResourceVersion())
		s.consume(slot{kind: slotUpdate, uid: uid, rv: ev.oldRV})
	case eventDeleted:
		s.dropObject(uid)
	}
}

func filter(ps []change.Pending, keep func(change.Pending) bool) []change.Pending {
	out := ps[:0]
	for _, p := range ps {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// choose names the author when every remaining claim names the same user,
// and Unknown when they disagree; with no claim it decides (Unknown) only
// when final.
func choose(ps []change.Pending, final bool) (change.User, bool) {
	if len(ps) == 0 {
		return change.Unknown, final
	}
	first := ps[0].User
	for _, p := range ps[1:] {
		if !sameUser(first, p.User) {
			return change.Unknown, true
		}
	}
	if first.IsUnknown() {
		return change.Unknown, true
	}
	return first, true
}

// sameUser compares name, uid and groups (as sets); extra attributes such
// as a session id may differ between two requests of one user.
func sameUser(a, b change.User) bool {
	if a.Username != b.Username || a.UID != b.UID || len(a.Groups) != len(b.Groups) {
		return false
	}
	ga := append([]string(nil), a.Groups...)
	gb := append([]string(nil), b.Groups...)
	sort.Strings(ga)
	sort.Strings(gb)
	for i := range ga {
		if ga[i] != gb[i] {
			return false
		}
	}
	return true
}

// uidOf is the object identity events of one object share.
func uidOf(obj *unstructured.Unstructured) types.UID { return obj.GetUID() }
