// Package batch turns confirmed changes into commits. It receives
// change.Change values from the watch stage (Record) and hands each Git
// target's changes to that target's worker, in order. The files, by stage:
//
//   - batcher.go: Record, Start, Forget, Status; one worker per GitTarget.
//   - worker.go: the target's goroutine: ordered queue, batches, network
//     calls (pull, push) on a helper goroutine with a deadline, backoff.
//   - stage.go, policy.go, render.go, breaker.go: one rule's view of a
//     change → the file it writes (Rego policy, module breaker, built-in
//     and WASM sanitizers, layout).
//   - session.go: author sessions (one commit per author burst).
//   - journal.go: the crash journal of rendered, uncommitted changes.
//   - target.go: the target's clone, placement of objects, commits with
//     retry, authors and commit messages.
//   - reconcile.go: each target's full reconcile (planned by
//     engine/reconcile) at start, on rule or target changes and on an
//     interval, committed as one RECONCILE commit by the operator; it runs
//     as a job on the target's worker, after the changes queued before it.
//
// The writer pushes on a timeline (after N commits or an interval), never
// per change; see docs/architecture.md ("Git timeline", "Workers", "Crash
// safety (journal)").
package batch
