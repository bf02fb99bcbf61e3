package plugin

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// deadlineMode selects how a call is bounded. Compiled code runs on the
// calling goroutine and cannot be preempted, so a guest loop stops only if
// the compiled code itself checks for a stop request.
type deadlineMode int

const (
	// deadlineInterrupt (the default) compiles modules instrumented by
	// instrument: every loop reads the module's interrupt global, and a
	// per-call timer sets it when the deadline passes, so the guest traps at
	// its next loop header. A load and a branch per iteration.
	deadlineInterrupt deadlineMode = iota
	// deadlineContext uses wazero's RuntimeConfig.WithCloseOnContextDone
	// and passes a context with the deadline: wazero checks it at every
	// loop header by leaving machine code for the Go runtime, which costs
	// about 7x the work of a Go-built plugin's call (docs/benchmarks.md).
	// Kept for the benchmark comparison.
	deadlineContext
	// deadlineNone bounds nothing; benchmarks use it as the baseline only.
	deadlineNone
)

// closeOnContextDone reports whether the runtime needs wazero's own checks.
func (d deadlineMode) closeOnContextDone() bool { return d == deadlineContext }

// atomicBool is an atomic.Bool; named so instance stays readable.
type atomicBool = atomic.Bool

// guard bounds the wazero calls of one plugin call (or of an instance's
// _initialize) by a timeout and by the caller's ctx.
type guard struct {
	parent  context.Context
	timeout time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
	timer   *time.Timer
	after   func() bool
	once    sync.Once
	hit     atomic.Bool
	// expired is set by stop: whether the deadline or the caller's
	// cancellation ended (or could have ended) the call.
	expired bool
}

// newGuard starts bounding calls on inst. interrupt is the instance's
// interrupt global (deadlineInterrupt only).
func newGuard(ctx context.Context, interrupt api.MutableGlobal, timeout time.Duration, mode deadlineMode) *guard {
	g := &guard{parent: ctx, timeout: timeout}
	switch mode {
	case deadlineContext:
		g.ctx, g.cancel = context.WithTimeout(ctx, timeout)
	case deadlineNone:
		g.ctx = ctx
	default:
		// wazero ignores the context of calls here: the timer and the
		// caller's cancellation both raise the interrupt instead. Setting a
		// global only writes the instance's memory, so doing it from the
		// timer's goroutine while the guest runs releases nothing under it.
		g.ctx = ctx
		raise := func() {
			g.once.Do(func() {
				g.hit.Store(true)
				interrupt.Set(1)
			})
		}
		g.timer = time.AfterFunc(timeout, raise)
		g.after = context.AfterFunc(ctx, raise)
	}
	return g
}

// fired reports, during a call, whether the deadline or the caller's
// cancellation has stopped it.
func (g *guard) fired() bool {
	return g.hit.Load() || (g.cancel != nil && g.ctx.Err() != nil)
}

// stopped describes a call the guard stopped: the caller's cancellation, or
// the deadline. The guest's own error (a trap at the interrupt, or wazero's
// exit code) says nothing more and is dropped.
func (g *guard) stopped() error {
	if err := g.parent.Err(); err != nil {
		return fmt.Errorf("stopped: %w", err)
	}
	return fmt.Errorf("stopped at its deadline of %v: %w", g.timeout, context.DeadlineExceeded)
}

// stop ends the guard; afterwards no interrupt can be raised, and expired
// says whether one was (the instance must then be discarded, even when its
// call returned normally just before).
func (g *guard) stop() {
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.after != nil {
		g.after()
	}
	// Waits for a raise already running; none can start after this.
	g.once.Do(func() {})
	g.expired = g.fired()
	if g.cancel != nil {
		g.cancel()
	}
}
