package batch

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gitops_reverser_batch_queue_depth", Help: "Confirmed changes waiting to be rendered.",
	})
	renderErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_render_errors_total", Help: "Changes not written because sanitizing or layout failed.",
	})
	commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_commits_total", Help: "Commits created.",
	})
	commitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_commit_errors_total", Help: "Author sessions that failed to commit.",
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
	deferredDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gitops_reverser_deferred_changes", Help: "Changes waiting for a Git target that could not be opened.",
	})
	deferredDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_deferred_dropped_total", Help: "Waiting changes dropped because too many waited for one target.",
	})
	pushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_push_errors_total", Help: "Failed pushes (retried).",
	})
)

func init() {
	metrics.Registry.MustRegister(queueDepth, renderErrors, commits, commitErrors, pushes, pushErrors, policyIgnored, policyErrors, moduleErrors, deferredDepth, deferredDropped)
}
