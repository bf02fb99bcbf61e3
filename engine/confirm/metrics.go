package confirm

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	confirmedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitops_reverser_changes_confirmed_total",
		Help: "Persisted changes handed on by the confirm stage, by whether an author was attributed.",
	}, []string{"attributed"})
	unknownAuthorTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_unknown_author_total",
		Help: "Persisted changes handed on with author unknown (no claim, or claims that disagree).",
	})
	pendingExpiredTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_pending_expired_total",
		Help: "Pending changes that no watch event confirmed within the TTL.",
	})
	pendingEvictedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_pending_evicted_total",
		Help: "Pending changes evicted, oldest first, because the store was full.",
	})
	taintsAddedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_claim_taints_total",
		Help: "Claims the webhook could not keep (dropped, too large, failed) whose write is marked to be handed on as unknown.",
	})
	taintsEvictedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_claim_taints_evicted_total",
		Help: "Taints evicted because the store was full; every change decided within their TTL is handed on as unknown.",
	})
	taintedChangesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_tainted_changes_total",
		Help: "Persisted changes handed on as unknown because a claim for them was lost or the taint store overflowed.",
	})

	confirmedAttributed   = confirmedTotal.WithLabelValues("true")
	confirmedUnattributed = confirmedTotal.WithLabelValues("false")
)

func init() {
	// Register, not MustRegister: the only failure is a duplicate
	// registration, which must not crash the process.
	_ = metrics.Registry.Register(confirmedTotal)
	_ = metrics.Registry.Register(unknownAuthorTotal)
	_ = metrics.Registry.Register(pendingExpiredTotal)
	_ = metrics.Registry.Register(pendingEvictedTotal)
	_ = metrics.Registry.Register(taintsAddedTotal)
	_ = metrics.Registry.Register(taintsEvictedTotal)
	_ = metrics.Registry.Register(taintedChangesTotal)
}
