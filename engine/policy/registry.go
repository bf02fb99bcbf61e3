package policy

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// Registry compiles policies once per revision and shares them. Each rule
// (identified by a caller-chosen id, e.g. "WatchRule/ns/name") holds one
// revision; a revision no rule holds any more is dropped. Every policy is the
// registry's default modules plus the rule's own modules, so a rule adds to
// the defaults (see docs/policies.md). A Registry is safe for concurrent use.
type Registry struct {
	defaults map[string]string
	opts     Options

	mu         sync.Mutex
	byRevision map[string]*compiled
	byID       map[string]string // id -> revision
}

// compiled is one revision, compiled once; done is closed when policy or err
// is set.
type compiled struct {
	done   chan struct{}
	policy *Policy
	err    error
	refs   int
}

// NewRegistry returns a Registry whose policies include defaults (file name
// to source, e.g. policies.Defaults()).
func NewRegistry(defaults map[string]string, opts Options) *Registry {
	return &Registry{
		defaults:   maps.Clone(defaults),
		opts:       opts,
		byRevision: map[string]*compiled{},
		byID:       map[string]string{},
	}
}

// Get returns the policy of rule id: the defaults with modules (file name to
// source; nil for a rule without a policy of its own). A revision compiled
// before (for any id) is reused, and its compile error too: a *CompileError
// whose message suits a status condition. A module name that is also a
// default's name is an error.
func (r *Registry) Get(id string, modules map[string]string) (*Policy, error) {
	all := maps.Clone(r.defaults)
	if all == nil {
		all = map[string]string{}
	}
	for name, src := range modules {
		if _, clash := r.defaults[name]; clash {
			return nil, fmt.Errorf("policy of %s: module %q has the name of a default module", id, name)
		}
		all[name] = src
	}
	rev := Revision(all)

	r.mu.Lock()
	c, ok := r.byRevision[rev]
	if !ok {
		c = &compiled{done: make(chan struct{})}
		r.byRevision[rev] = c
	}
	if old, held := r.byID[id]; !held || old != rev {
		c.refs++
		if held {
			r.releaseLocked(old)
		}
		r.byID[id] = rev
	}
	r.mu.Unlock()

	if !ok {
		// Compilation is not cancellable; it takes milliseconds.
		c.policy, c.err = Compile(context.Background(), all, r.opts)
		close(c.done)
	}
	<-c.done
	if c.err != nil {
		return nil, fmt.Errorf("policy of %s: %w", id, c.err)
	}
	return c.policy, nil
}

// Forget releases the revision rule id holds; a revision no rule holds is
// dropped.
func (r *Registry) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev, ok := r.byID[id]; ok {
		delete(r.byID, id)
		r.releaseLocked(rev)
	}
}

// Revisions is the number of revisions the registry holds.
func (r *Registry) Revisions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byRevision)
}

func (r *Registry) releaseLocked(rev string) {
	c, ok := r.byRevision[rev]
	if !ok {
		return
	}
	c.refs--
	if c.refs <= 0 {
		// A caller still waiting on c.done keeps its pointer; the entry
		// only leaves the map.
		delete(r.byRevision, rev)
	}
}
