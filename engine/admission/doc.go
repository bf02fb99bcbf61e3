// Package admission is the "who" half of capture: the validating admission
// webhook.
//
// It receives AdmissionReview v1 requests from the API server on
// POST /validate and always answers allowed: true at once; the request is
// handed to a bounded queue with a non-blocking send, so a full queue, a slow
// rule or anything downstream never slows or blocks the API server (a full
// queue only costs attribution, counted in
// gitops_reverser_admission_requests_total{result="dropped_full"}).
// Dry-run requests are dropped: they are never persisted.
//
// Workers drain the queue: they decode the object and oldObject, ask the rule
// index whether any rule selects the request, and hand on a change.Pending
// (user, operation, object UID, old resourceVersion, fingerprint of the object
// the request would store) to a PendingRecorder, the confirm stage's store.
// A pending change is only a claim: the confirm stage pairs it with the watch
// event of the persisted write.
//
// ConfigSyncer keeps the ValidatingWebhookConfiguration in step with the
// resources the rules select, with the caBundle read from the CA file that
// PrepareServingCert found beside the serving certificate, and reports a
// certificate that bundle does not sign. ClientAuth makes the webhook
// server hear only the API server's client certificate (see
// docs/threat-model.md).
package admission
