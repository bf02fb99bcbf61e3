package batch

import (
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

// fileChange is one rendered file of a change.
type fileChange struct {
	path    string
	content []byte
	delete  bool
	// summary is one line for the commit message, e.g.
	// "UPDATE configmaps shop/cms".
	summary string
	// movedFrom marks the removal of an object's old path after its layout
	// moved it; it is not a change of its own in the message.
	movedFrom bool
	// trace and observed are the change's confirm span and watch event
	// (telemetry.go); zero for a replayed change.
	trace    trace.SpanContext
	observed time.Time
	// why is the reason the author gave with the change
	// (transform.WhyAnnotation), as lines joined by "\n" through
	// change.EscapeWhy; "" when none.
	why string
}

// session is one author's open burst of changes to one target.
type session struct {
	// id numbers the session within its target (the journal groups records
	// by it).
	id      uint64
	author  change.User
	opened  time.Time
	last    time.Time
	files   map[string]fileChange
	order   []string
	changes []string
	riders  []rider
	// whys are the reasons given with changes, index by index; "" for
	// none.
	whys []string
}

func newSession(author change.User, now time.Time) *session {
	return &session{author: author, opened: now, last: now, files: map[string]fileChange{}}
}

func (s *session) add(f fileChange, now time.Time) {
	if _, ok := s.files[f.path]; !ok {
		s.order = append(s.order, f.path)
	}
	s.files[f.path] = f
	if !f.movedFrom { // a moved object's old path rides along unlisted
		s.changes = append(s.changes, f.summary)
		s.whys = append(s.whys, f.why)
	}
	s.ride(f, now)
	s.last = now
}

// sessions holds the open sessions of one target. Every operation is O(1)
// per change: sessions are keyed by author and every held path points at
// its session, so "does another author hold this path" is one map lookup.
type sessions struct {
	byAuthor map[string]*session
	byPath   map[string]*session
	limits   Limits
	nextID   uint64
}

// Limits close a session.
type Limits struct {
	// Idle closes a session after this long without a change by its
	// author.
	Idle time.Duration
	// MaxChanges closes a session when it holds this many changes.
	MaxChanges int
	// MaxAge closes a session this long after its first change.
	MaxAge time.Duration
}

func newSessions(l Limits) *sessions {
	return &sessions{byAuthor: map[string]*session{}, byPath: map[string]*session{}, limits: l}
}

func authorKey(u change.User) string { return u.Username }

// add puts f into its author's session. It returns sessions that must be
// closed first, in order: another author's session that holds the same path
// (so history keeps the order of writes), and the author's own session when
// it is full.
func (ss *sessions) add(author change.User, f fileChange, now time.Time) []*session {
	_, closed := ss.addTo(author, f, now)
	return closed
}

// addTo is add that also returns the session f went into.
func (ss *sessions) addTo(author change.User, f fileChange, now time.Time) (*session, []*session) {
	var closed []*session
	if holder, ok := ss.byPath[f.path]; ok && authorKey(holder.author) != authorKey(author) {
		ss.remove(holder)
		closed = append(closed, holder)
	}
	s, ok := ss.byAuthor[authorKey(author)]
	if !ok {
		s = newSession(author, now)
		ss.nextID++
		s.id = ss.nextID
		ss.byAuthor[authorKey(author)] = s
	}
	s.add(f, now)
	ss.byPath[f.path] = s
	if ss.limits.MaxChanges > 0 && len(s.changes) >= ss.limits.MaxChanges {
		ss.remove(s)
		closed = append(closed, s)
	}
	return s, closed
}

// due returns the sessions that are idle or old enough to close.
func (ss *sessions) due(now time.Time) []*session {
	var out []*session
	for _, s := range ss.byAuthor {
		if (ss.limits.Idle > 0 && now.Sub(s.last) >= ss.limits.Idle) ||
			(ss.limits.MaxAge > 0 && now.Sub(s.opened) >= ss.limits.MaxAge) {
			out = append(out, s)
		}
	}
	for _, s := range out {
		ss.remove(s)
	}
	sortSessions(out)
	return out
}

// all removes and returns every open session.
func (ss *sessions) all() []*session {
	out := make([]*session, 0, len(ss.byAuthor))
	for _, s := range ss.byAuthor {
		out = append(out, s)
	}
	for _, s := range out {
		ss.remove(s)
	}
	sortSessions(out)
	return out
}

func (ss *sessions) remove(s *session) {
	delete(ss.byAuthor, authorKey(s.author))
	for p, holder := range s.files {
		_ = holder
		if ss.byPath[p] == s {
			delete(ss.byPath, p)
		}
	}
}

func (ss *sessions) empty() bool { return len(ss.byAuthor) == 0 }

// open returns the open sessions, oldest first, without closing them.
func (ss *sessions) open() []*session {
	out := make([]*session, 0, len(ss.byAuthor))
	for _, s := range ss.byAuthor {
		out = append(out, s)
	}
	sortSessions(out)
	return out
}

// records returns the journal records that recreate s.
func (s *session) records() []journalRecord {
	out := make([]journalRecord, 0, len(s.order))
	for i, p := range s.order {
		f := s.files[p]
		rec := journalRecord{Session: s.id, User: s.author, Path: f.path, Content: f.content, Delete: f.delete,
			MovedFrom: f.movedFrom, When: s.last.UnixNano()}
		if i == 0 {
			rec.Changes = s.changes
			rec.Whys = journalWhys(s.whys)
		}
		out = append(out, rec)
	}
	return out
}

// replaySessions rebuilds the sessions a journal recorded, in the order
// they began.
func replaySessions(recs []journalRecord) []*session {
	var out []*session
	byID := map[uint64]*session{}
	for _, rec := range recs {
		s, ok := byID[rec.Session]
		when := time.Unix(0, rec.When)
		if !ok {
			s = newSession(rec.User, when)
			s.id = rec.Session
			byID[rec.Session] = s
			out = append(out, s)
		}
		if _, seen := s.files[rec.Path]; !seen {
			s.order = append(s.order, rec.Path)
		}
		s.files[rec.Path] = fileChange{path: rec.Path, content: rec.Content, delete: rec.Delete, movedFrom: rec.MovedFrom}
		s.changes = append(s.changes, rec.Changes...)
		s.whys = append(s.whys, rec.Whys...)
		for len(s.whys) < len(s.changes) { // a record without reasons
			s.whys = append(s.whys, "")
		}
		s.last = when
	}
	return out
}

// sortSessions orders sessions by their first change, so commits follow
// the order in which bursts began.
func sortSessions(s []*session) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].opened.Before(s[j-1].opened); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// journalWhys returns whys for a journal record: nil when no change has a
// reason, so records stay as small as before reasons existed.
func journalWhys(whys []string) []string {
	for _, w := range whys {
		if w != "" {
			return whys
		}
	}
	return nil
}
