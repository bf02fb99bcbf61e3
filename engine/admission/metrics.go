package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results of an admission request, the label of requestsTotal.
const (
	resultQueued    = "queued"
	resultDropped   = "dropped_full"
	resultDryRun    = "dry_run"
	resultMalformed = "malformed"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitops_reverser_admission_requests_total",
		Help: "Admission requests received by the capture webhook, by result (queued, dropped_full, dry_run, malformed).",
	}, []string{"result"})
	matchedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gitops_reverser_admission_matched_total",
		Help: "Admission requests that at least one rule selects, recorded as pending changes.",
	})
	queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gitops_reverser_admission_queue_depth",
		Help: "Admission requests waiting in the queue for a worker.",
	})

	requestsQueued    = requestsTotal.WithLabelValues(resultQueued)
	requestsDropped   = requestsTotal.WithLabelValues(resultDropped)
	requestsDryRun    = requestsTotal.WithLabelValues(resultDryRun)
	requestsMalformed = requestsTotal.WithLabelValues(resultMalformed)
)

func init() {
	// Register, not MustRegister: the only failure is a duplicate
	// registration, which must not crash the process.
	_ = metrics.Registry.Register(requestsTotal)
	_ = metrics.Registry.Register(matchedTotal)
	_ = metrics.Registry.Register(queueDepth)
}
