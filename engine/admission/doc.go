// Package admission is the "who" half of capture: the validating admission
// webhook.
//
// It receives AdmissionReview v1 requests from the API server on
// POST /validate and always answers allowed: true at once; the request is
// handed to a queue bounded by slots and by bytes with a non-blocking send,
// so a full queue, a slow rule or anything downstream never slows or blocks
// the API server. A review that cannot be kept (queue full, its bytes over
// the bound, a body over the 5 MiB cap, a review the worker cannot decode)
// only costs attribution: a bounded scan reads its keys and the confirm
// stage is handed a change.Taint, so that its write is recorded as unknown
// and never attributed from another (possibly forged) claim. Drops are
// counted in gitops_reverser_admission_dropped_total{reason}. While a request
// waits in the queue its key is announced (ClaimQueued/ClaimDone), so a claim
// recorded earlier cannot win the race against it. Dry-run requests are
// dropped: they are never persisted.
//
// The handler reads a review in one validating pass (decodeReview; anything
// unusual goes to encoding/json) and keeps object and oldObject as raw bytes.
// Workers drain the queue: they decode the object (and an UPDATE's oldObject
// when the rules need its labels), ask the rule index whether any rule
// selects the request, and hand on a change.Pending
// (user, operation, object UID, old resourceVersion, fingerprint of the object
// the request would store) to a PendingRecorder, the confirm stage's store.
// A pending change is only a claim: the confirm stage pairs it with the watch
// event of the persisted write.
//
// ConfigSyncer keeps the ValidatingWebhookConfiguration in step with the
// resources the rules select, with the caBundle read from the CA file that
// PrepareServingCert found beside the serving certificate, and reports a
// certificate that bundle does not sign. HTTP1Only keeps the webhook server
// on HTTP/1.1 (docs/benchmarks.md, "Keeps up"). ClientAuth makes the webhook
// server hear only the API server's client certificate (see
// docs/threat-model.md).
package admission
