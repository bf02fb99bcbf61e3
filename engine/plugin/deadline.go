package plugin

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// deadlineMode selects how a call is bounded. Both bounded modes need
// wazero's CloseOnContextDone: without it compiled code never checks whether
// its module was closed, so nothing can stop a guest loop (measured, see
// docs/benchmarks.md).
type deadlineMode int

const (
	// deadlineContext (the default) passes a context with the deadline to
	// every wazero call; wazero marks the module closed when it expires
	// and releases its resources on the calling goroutine, once the guest
	// has stopped.
	deadlineContext deadlineMode = iota
	// deadlineWatchdog calls with a context that never expires and arms
	// one timer per call that closes the module when the deadline passes.
	// It measured about 7% faster on a light call, but CloseWithExitCode
	// from the timer's goroutine releases the module's resources while the
	// guest may still be inside a WASI call (the race detector reports it
	// in clock_time_get), so it is kept only for the benchmark comparison.
	deadlineWatchdog
	// deadlineNone bounds nothing; benchmarks use it as the baseline only.
	deadlineNone
)

func (d deadlineMode) ensureTermination() bool { return d != deadlineNone }

// atomicBool is an atomic.Bool; named so instance stays readable.
type atomicBool = atomic.Bool

// guard bounds the wazero calls of one plugin call by Options.CallTimeout
// and by the caller's ctx.
type guard struct {
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	after  func() bool
	hit    atomic.Bool
}

func newGuard(ctx context.Context, inst *instance, opts Options) *guard {
	g := &guard{}
	switch opts.deadline {
	case deadlineContext:
		g.ctx, g.cancel = context.WithTimeout(ctx, opts.CallTimeout)
	case deadlineNone:
		g.ctx = ctx
	default:
		g.ctx = context.WithoutCancel(ctx)
		closeIt := func() {
			g.hit.Store(true)
			_ = inst.mod.CloseWithExitCode(context.Background(), sys.ExitCodeDeadlineExceeded)
		}
		g.timer = time.AfterFunc(opts.CallTimeout, closeIt)
		g.after = context.AfterFunc(ctx, closeIt)
	}
	return g
}

// fired reports whether the deadline (or the caller's cancellation) ended
// the call.
func (g *guard) fired() bool {
	return g.hit.Load() || (g.cancel != nil && g.ctx.Err() != nil)
}

func (g *guard) stop() {
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.after != nil {
		g.after()
	}
	if g.cancel != nil {
		g.cancel()
	}
}
