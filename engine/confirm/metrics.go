package confirm

import (
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

var (
	confirmedTotal      = telemetry.NewCounterVec("gitops_reverser_changes_confirmed_total", "Persisted changes handed on by the confirm stage, by whether an author was attributed.", "attributed")
	unknownAuthorTotal  = telemetry.NewCounter("gitops_reverser_unknown_author_total", "Persisted changes handed on with author unknown (no claim, or claims that disagree).")
	pendingExpiredTotal = telemetry.NewCounter("gitops_reverser_pending_expired_total", "Pending changes that no watch event confirmed within the TTL.")
	pendingEvictedTotal = telemetry.NewCounter("gitops_reverser_pending_evicted_total", "Pending changes evicted, oldest first, because the store was full.")
	taintsAddedTotal    = telemetry.NewCounter("gitops_reverser_claim_taints_total", "Claims the webhook could not keep (dropped, too large, failed) whose write is marked to be handed on as unknown.")
	taintsEvictedTotal  = telemetry.NewCounter("gitops_reverser_claim_taints_evicted_total", "Taints evicted because the store was full; every change decided within their TTL is handed on as unknown.")
	listedClaimedTotal  = telemetry.NewCounterVec("gitops_reverser_listed_claimed_objects_total", "Objects of an informer's initial list with a create claim at the webhook, by result: paired (handed on with the claim's author) or declined (left to the reconcile).", "result")
	taintedChangesTotal = telemetry.NewCounter("gitops_reverser_tainted_changes_total", "Persisted changes handed on as unknown because a claim for them was lost or the taint store overflowed.")

	confirmedAttributed   = confirmedTotal.WithLabelValues("true")
	confirmedUnattributed = confirmedTotal.WithLabelValues("false")
	listedPairedTotal     = listedClaimedTotal.WithLabelValues("paired")
	listedDeclinedTotal   = listedClaimedTotal.WithLabelValues("declined")
)
