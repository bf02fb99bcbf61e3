package rules

import (
	"sync"
	"time"
)

// Failure is a runtime failure of one of a rule's stages (a WASM sanitizer
// or layout) that kept a change out of Git.
type Failure struct {
	// Module names the module that failed.
	Module string
	// Reason is a condition reason, e.g. SanitizerFailed.
	Reason string
	// Message says what failed and why.
	Message string
	// Generation of the rule when it failed; a newer generation (the user
	// changed the rule) makes the failure stale.
	Generation int64
	// When the failure happened.
	When time.Time
}

// Health remembers the latest runtime failure of each rule until the rule
// changes or the failing module succeeds again. The batch stage reports;
// the rule controller reads it into the rule's conditions. Changed
// delivers the key of every rule whose health changed.
type Health struct {
	mu       sync.Mutex
	failures map[Key]Failure
	changed  chan Key
}

// NewHealth returns an empty Health.
func NewHealth() *Health {
	return &Health{failures: map[Key]Failure{}, changed: make(chan Key, 1024)}
}

// Fail records a failure of a rule.
func (h *Health) Fail(k Key, f Failure) {
	h.mu.Lock()
	prev, had := h.failures[k]
	h.failures[k] = f
	h.mu.Unlock()
	if !had || prev.Reason != f.Reason || prev.Message != f.Message {
		h.notify(k)
	}
}

// Recover clears the rule's failure if it came from module.
func (h *Health) Recover(k Key, module string) {
	h.mu.Lock()
	f, had := h.failures[k]
	if had && f.Module == module {
		delete(h.failures, k)
	}
	h.mu.Unlock()
	if had && f.Module == module {
		h.notify(k)
	}
}

// Failure returns the rule's failure at the given generation, if any.
func (h *Health) Failure(k Key, generation int64) (Failure, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.failures[k]
	if !ok || f.Generation < generation {
		return Failure{}, false
	}
	return f, true
}

// Changed delivers keys of rules whose health changed.
func (h *Health) Changed() <-chan Key { return h.changed }

func (h *Health) notify(k Key) {
	select {
	case h.changed <- k:
	default:
	}
}
