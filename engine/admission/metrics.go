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
