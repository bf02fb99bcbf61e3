package batch

import (
	"os"
	"runtime/debug"
	"sync"
)

// reconcileGCPercent is the collector's target (GOGC) while a reconcile
// plans and commits, and while the push that sends its commit runs (the
// pack encoder reads every new object of the commit again). A reconcile allocates about 40 KB per object (the
// page's decoding, the policy, the sanitizers, the YAML) and keeps only a
// path, a hash and the file's bytes: with the default 100 the heap grows
// to twice the live heap with garbage before a collection, which for
// 20,000 objects was most of the process's peak RSS. 25 trades more
// collections during the burst (CPU) for a peak close to the live heap.
const reconcileGCPercent = 25

// gcBurst counts the reconciles running (one per target worker at most)
// and keeps the collector's target from before the first.
var gcBurst struct {
	sync.Mutex
	running int
	prev    int
}

// tightGC sets the collector's target to reconcileGCPercent until the
// function it returns is called by the last running reconcile, which
// restores the previous target. An operator that sets GOGC keeps its own.
func tightGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	gcBurst.Lock()
	defer gcBurst.Unlock()
	if gcBurst.running == 0 {
		gcBurst.prev = debug.SetGCPercent(reconcileGCPercent)
	}
	gcBurst.running++
	return func() {
		gcBurst.Lock()
		defer gcBurst.Unlock()
		gcBurst.running--
		if gcBurst.running == 0 {
			debug.SetGCPercent(gcBurst.prev)
		}
	}
}
