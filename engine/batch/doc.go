// Package batch turns confirmed changes into commits. It receives
// change.Change values from the watch stage, renders each through the
// built-in sanitizer and the path layout into a file change, groups one
// author's burst of changes into an author session per Git target, and
// hands each closed session to the target's writer as one commit. The writer
// pushes on a timeline (after N commits or an interval), never per change.
// It also runs each target's full reconcile (reconcile.go, planned by
// engine/reconcile) at start, on rule or target changes and on an interval,
// and commits its difference as one RECONCILE commit by the operator.
package batch
