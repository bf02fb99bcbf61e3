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
}
