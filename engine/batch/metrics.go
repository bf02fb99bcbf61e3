package batch

import (
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

var (
	queueDepth       = telemetry.NewGaugeVec("gitops_reverser_batch_queue_depth", "Confirmed changes waiting to be rendered, by Git target.", "target")
	backlog          = telemetry.NewGaugeVec("gitops_reverser_backlog_changes", "Changes not yet committed (queued, held, in author sessions), by Git target.", "target")
	unpushedCommits  = telemetry.NewGaugeVec("gitops_reverser_unpushed_commits", "Local commits the remote does not have yet, by Git target.", "target")
	renderErrors     = telemetry.NewCounter("gitops_reverser_render_errors_total", "Changes not written because sanitizing or layout failed.")
	commits          = telemetry.NewCounter("gitops_reverser_commits_total", "Commits created.")
	commitErrors     = telemetry.NewCounter("gitops_reverser_commit_errors_total", "Failed attempts to commit an author session (the session is kept and retried).")
	pushes           = telemetry.NewCounter("gitops_reverser_pushes_total", "Successful pushes.")
	policyIgnored    = telemetry.NewCounter("gitops_reverser_policy_ignored_total", "Confirmed changes a rule's Rego policy decided not to record.")
	policyErrors     = telemetry.NewCounter("gitops_reverser_policy_errors_total", "Policy evaluations that failed (the change is recorded).")
	moduleErrors     = telemetry.NewCounterVec("gitops_reverser_module_errors_total", "Changes not written because a WASM sanitizer or layout failed, by module.", "module")
	pushErrors       = telemetry.NewCounter("gitops_reverser_push_errors_total", "Failed pushes and pulls (retried with backoff).")
	journalSyncs     = telemetry.NewCounter("gitops_reverser_journal_syncs_total", "fsyncs of the targets' journals (before a commit, else at most one a second while changes come).")
	journaledChanges = telemetry.NewCounter("gitops_reverser_journaled_changes_total", "Rendered file changes written to a target's journal.")
	replayedChanges  = telemetry.NewCounter("gitops_reverser_journal_replayed_changes_total", "File changes recovered from a journal at start (left by a crash).")
	recordBlocked    = telemetry.NewCounter("gitops_reverser_record_blocked_total", "Changes that found their target's queue full and waited for room (backpressure).")
	heldDropped      = telemetry.NewCounter("gitops_reverser_held_changes_dropped_total", "Changes dropped because their GitTarget could not be read for too long (missing target or Secret).")
	changesCommitted = telemetry.NewCounterVec("gitops_reverser_changes_committed_total",
		"Changes written in a commit of an author session, by target and by whether the author is known.", "target", "attributed")
	pushLag = telemetry.NewHistogramVec("gitops_reverser_change_push_lag_seconds",
		"Time from the watch event of a change to the successful push of the commit that holds it.",
		[]float64{0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}, "target")
	targetReachable = telemetry.NewGaugeVec("gitops_reverser_target_reachable",
		"1 while the last network call to the target's remote (fetch, pull, push) succeeded, 0 after a failure.", "target")
)
