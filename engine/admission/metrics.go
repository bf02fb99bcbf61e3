package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reasons a review was not kept, the label of droppedTotal.
const (
	dropQueueFull  = "queue_full"
	dropQueueBytes = "queue_bytes"
	dropTooLarge   = "too_large"
	dropFailed     = "failed"
)

// Results of an admission request, the label of requestsTotal.
const (
	resultQueued    = "queued"
	resultDropped   = "dropped"
	resultDryRun    = "dry_run"
	resultMalformed = "malformed"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitops_reverser_admission_requests_total",
		Help: "Admission requests received by the capture webhook, by result (queued, dropped, dry_run, malformed).",
	}, []string{"result"})
	droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitops_reverser_admission_dropped_total",
		Help: "Admission reviews the capture webhook could not keep, by reason (queue_full, queue_bytes, too_large, failed); each taints its write, which is then recorded with author unknown.",
	}, []string{"reason"})
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
	_ = metrics.Registry.Register(droppedTotal)
	_ = metrics.Registry.Register(matchedTotal)
	_ = metrics.Registry.Register(queueDepth)
}
