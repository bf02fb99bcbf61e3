package batch

import (
	"sync"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// breakerCooldown is how long a rule's module that timed out or ran out of
// memory is not called again. Such a failure costs the whole call deadline;
// without the breaker a hostile module would spend it on every change its
// rule sees, and every target behind the one batch goroutine would wait.
const breakerCooldown = 30 * time.Second

// trip is an open breaker of one rule.
type trip struct {
	module     string
	reason     string
	message    string
	generation int64
	until      time.Time
}

// breakers remembers, per rule, the module that failed slowly. The target
// workers share it (a rule's module is slow for every target).
type breakers struct {
	mu sync.Mutex
	m  map[rules.Key]trip
}

// slow reports whether a module failure spent the call deadline.
func slow(r plugin.Reason) bool {
	return r == plugin.ReasonTimeout || r == plugin.ReasonOutOfMemory
}

// open returns the rule's open breaker, if any. A breaker of an older
// generation of the rule (the user changed it) is closed.
func (bs *breakers) open(r *rules.Rule, now time.Time) (trip, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	t, ok := bs.m[r.Key]
	if !ok {
		return trip{}, false
	}
	if t.generation != r.Generation || !now.Before(t.until) {
		delete(bs.m, r.Key)
		return trip{}, false
	}
	return t, true
}

// record opens the rule's breaker after a slow module failure.
func (bs *breakers) record(r *rules.Rule, me *moduleError, now time.Time) {
	if !slow(me.pluginReason) {
		return
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.m == nil {
		bs.m = map[rules.Key]trip{}
	}
	bs.m[r.Key] = trip{module: me.module, reason: me.reason, generation: r.Generation, until: now.Add(breakerCooldown),
		message: me.Error() + "; the module is not called again for " + breakerCooldown.String()}
}
