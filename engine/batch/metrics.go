package batch

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gitops_reverser_batch_queue_depth", Help: "Confirmed changes waiting to be rendered, by Git target.",
	}, []string{"target"})
	backlog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gitops_reverser_backlog_changes", Help: "Changes not yet committed (queued, held, in author sessions), by Git target.",
	}, []string{"target"})
	unpushedCommits = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gitops_reverser_unpushed_commits", Help: "Local commits the remote does not have yet, by Git target.",
	}, []string{"target"})
	renderErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_render_errors_total", Help: "Changes not written because sanitizing or layout failed.",
	})
	commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_commits_total", Help: "Commits created.",
	})
	commitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_commit_errors_total", Help: "Failed attempts to commit an author session (the session is kept and retried).",
	})
	pushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_pushes_total", Help: "Successful pushes.",
	})
	policyIgnored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_policy_ignored_total", Help: "Confirmed changes a rule's Rego policy decided not to record.",
	})
	policyErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_policy_errors_total", Help: "Policy evaluations that failed (the change is recorded).",
	})
	moduleErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitops_reverser_module_errors_total", Help: "Changes not written because a WASM sanitizer or layout failed, by module.",
	}, []string{"module"})
	pushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_push_errors_total", Help: "Failed pushes and pulls (retried with backoff).",
	})
	journalSyncs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_journal_syncs_total", Help: "fsyncs of the targets' journals (one per batch of changes).",
	})
	journaledChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_journaled_changes_total", Help: "Rendered file changes written to a target's journal.",
	})
	replayedChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_journal_replayed_changes_total", Help: "File changes recovered from a journal at start (left by a crash).",
	})
	recordBlocked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_record_blocked_total", Help: "Changes that found their target's queue full and waited for room (backpressure).",
	})
	heldDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_held_changes_dropped_total", Help: "Changes dropped because their GitTarget could not be read for too long (missing target or Secret).",
	})
)

func init() {
	metrics.Registry.MustRegister(queueDepth, backlog, unpushedCommits, renderErrors, commits, commitErrors, pushes, pushErrors,
		policyIgnored, policyErrors, moduleErrors, journalSyncs, journaledChanges, replayedChanges, recordBlocked, heldDropped)
}
