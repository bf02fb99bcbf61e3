package plugin

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// deadlineMode selects how a call is bounded. Compiled code runs on the
// calling goroutine and cannot be preempted, so a guest loop stops only if
// the compiled code itself checks whether to stop.
type deadlineMode int

const (
	// deadlineInterrupt (the default) compiles modules instrumented by
	// instrument: loops count down and call the host's interrupt_check
	// every checkEvery iterations, which compares the clock with the
	// call's deadline on the calling goroutine.
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

// guardKey is the context key under which a call's guard travels to the
// host's interrupt_check.
type guardKey struct{}

// guard bounds the wazero calls of one plugin call (or of an instance's
// _initialize) by a timeout and by the caller's ctx.
type guard struct {
	parent   context.Context
	timeout  time.Duration
	deadline time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	// hit is set by due. wazero runs host functions on the calling
	// goroutine, so the guard is only ever used by one goroutine.
	hit bool
	// expired is set by stop: whether the deadline or the caller's
	// cancellation stopped the call.
	expired bool
}

// newGuard starts bounding calls made with g.ctx.
func newGuard(ctx context.Context, timeout time.Duration, mode deadlineMode) *guard {
	g := &guard{parent: ctx, timeout: timeout, deadline: time.Now().Add(timeout)}
	switch mode {
	case deadlineContext:
		g.ctx, g.cancel = context.WithTimeout(ctx, timeout)
	case deadlineNone:
		g.ctx = ctx
	default:
		g.ctx = context.WithValue(ctx, guardKey{}, g)
	}
	return g
}

// due is interrupt_check's answer, on the guest's goroutine: whether the
// call must stop.
func (g *guard) due() bool {
	if !g.hit && (g.parent.Err() != nil || !time.Now().Before(g.deadline)) {
		g.hit = true
	}
	return g.hit
}

// interruptCheckFunc implements the interrupt_check import: 1 stops the
// guest (it traps), 0 lets it go on. A call without a guard (none is made)
// goes on.
func interruptCheckFunc(ctx context.Context, stack []uint64) {
	stack[0] = 0
	if g, ok := ctx.Value(guardKey{}).(*guard); ok && g.due() {
		stack[0] = 1
	}
}

// fired reports, during a call, whether the deadline or the caller's
// cancellation has stopped it.
func (g *guard) fired() bool {
	return g.hit || (g.cancel != nil && g.ctx.Err() != nil)
}

// stopped describes a call the guard stopped: the caller's cancellation, or
// the deadline. The guest's own error (a trap after interrupt_check, or
// wazero's exit code) says nothing more and is dropped.
func (g *guard) stopped() error {
	if err := g.parent.Err(); err != nil {
		return fmt.Errorf("stopped: %w", err)
	}
	return fmt.Errorf("stopped at its deadline of %v: %w", g.timeout, context.DeadlineExceeded)
}

// stop ends the guard; expired then says whether it stopped the call, in
// which case the instance is discarded.
func (g *guard) stop() {
	g.expired = g.fired()
	if g.cancel != nil {
		g.cancel()
	}
}
