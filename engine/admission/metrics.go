package admission

import (
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
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
	requestsTotal = telemetry.NewCounterVec("gitops_reverser_admission_requests_total", "Admission requests received by the capture webhook, by result (queued, dropped, dry_run, malformed).", "result")
	droppedTotal  = telemetry.NewCounterVec("gitops_reverser_admission_dropped_total", "Admission reviews the capture webhook could not keep, by reason (queue_full, queue_bytes, too_large, failed); each taints its write, which is then recorded with author unknown.", "reason")
	matchedTotal  = telemetry.NewCounter("gitops_reverser_admission_matched_total", "Admission requests that at least one rule selects, recorded as pending changes.")
	queueDepth    = telemetry.NewUpDown("gitops_reverser_admission_queue_depth", "Admission requests waiting in the queue for a worker.")
	// answerSeconds has sub-millisecond buckets: the handler's own work is
	// tens of microseconds, the goal for the answer 2 ms (docs/benchmarks.md).
	answerSeconds = telemetry.NewHistogramVec("gitops_reverser_admission_duration_seconds",
		"Time the capture webhook's handler takes to answer an admission review, from the request's headers to the answer written (the body's arrival included; TLS and HTTP/2 framing before and after not).",
		[]float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 100e-3, 500e-3, 1}).WithLabelValues()

	requestsQueued    = requestsTotal.WithLabelValues(resultQueued)
	requestsDropped   = requestsTotal.WithLabelValues(resultDropped)
	requestsDryRun    = requestsTotal.WithLabelValues(resultDryRun)
	requestsMalformed = requestsTotal.WithLabelValues(resultMalformed)
)

func init() {
	// Serve every reason from the start (docs/metrics.md).
	for _, r := range []string{dropQueueFull, dropQueueBytes, dropTooLarge, dropFailed} {
		droppedTotal.WithLabelValues(r)
	}
}
