package batch

import (
	"time"

	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

// What the batcher adds to each change's trace (docs/metrics.md, "Traces"):
// a policy and a render span per rule while the change is staged, then per
// change a session span (from joining its author's session to the commit),
// a commit span and a push span, each with the commit's SHA. A commit of
// many changes thus appears in each change's trace, not as one span with
// links: "where did this change spend its time" is one trace to read. The
// same riders feed the lag histogram from the watch event to the push.

// maxRiders bounds the changes remembered between their commit and the
// push that carries them; past it the oldest go unmeasured.
const maxRiders = 10000

// rider is one change in a session, remembered until it is pushed.
type rider struct {
	trace    trace.SpanContext
	observed time.Time // the watch event; zero for a replayed change
	joined   time.Time // when it joined its session
	commit   string
}

// ride notes a rendered change on its session.
func (s *session) ride(f fileChange, now time.Time) {
	if f.movedFrom || (f.observed.IsZero() && !f.trace.IsValid()) {
		return
	}
	s.riders = append(s.riders, rider{trace: f.trace, observed: f.observed, joined: now})
}

// committed records the session and commit spans of a committed session's
// changes and keeps them for the push.
func (t *target) committed(s *session, sha string, start, end time.Time) {
	label := t.key.String()
	n := float64(len(s.changes))
	if s.author.IsUnknown() {
		changesCommitted.WithLabelValues(label, "false").Add(n)
	} else {
		changesCommitted.WithLabelValues(label, "true").Add(n)
	}
	for i := range s.riders {
		r := &s.riders[i]
		r.commit = sha
		if r.trace.IsValid() {
			target := telemetry.AttrTarget.String(label)
			telemetry.Record(r.trace, telemetry.SpanSession, r.joined, start, target)
			telemetry.Record(r.trace, telemetry.SpanCommit, start, end, target, telemetry.AttrCommit.String(sha))
		}
	}
	t.riders = append(t.riders, s.riders...)
	if over := len(t.riders) - maxRiders; over > 0 {
		t.riders = append(t.riders[:0], t.riders[over:]...)
	}
	s.riders = nil
}

// pushed records the push spans and the lag of the changes a push carried.
func (t *target) pushed(start, end time.Time) {
	label := t.key.String()
	lag := pushLag.WithLabelValues(label)
	for _, r := range t.riders {
		if !r.observed.IsZero() {
			lag.Observe(end.Sub(r.observed).Seconds())
		}
		if r.trace.IsValid() {
			telemetry.Record(r.trace, telemetry.SpanPush, start, end, telemetry.AttrTarget.String(label),
				telemetry.AttrCommit.String(r.commit))
		}
	}
	t.riders = t.riders[:0]
}

// reachable sets the target's remote signal after a network call.
func (t *target) reachable(ok bool) { setReachable(t.key, ok) }

// setReachable sets the remote signal of key: 1 after a network call that
// succeeded, 0 after one that failed or while the target cannot be opened
// (its clone, its Secret).
func setReachable(key types.NamespacedName, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	targetReachable.WithLabelValues(key.String()).Set(v)
}
