// Package change holds the vocabulary that flows between the stages: the
// user who made a change, a pending change recorded by the admission webhook,
// and a confirmed change that the watch stage hands to the pipeline.
package change

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// UnknownUsername is the author of a change no admission request could be
// tied to with certainty.
const UnknownUsername = "unknown"

// User is the Kubernetes user of an admission request.
type User struct {
	// Username as authenticated by the API server.
	Username string
	// UID of the user, if the authenticator sets one.
	UID string
	// Groups of the user.
	Groups []string
	// Extra holds the authenticator's extra attributes.
	Extra map[string][]string
	// Claim is the span of the admission request that named this user
	// (its claim), so the change's trace starts at the webhook; zero when
	// tracing is off. Not part of the identity, never journaled.
	Claim trace.SpanContext `json:"-"`
}

// Unknown is the user of an unattributed change.
var Unknown = User{Username: UnknownUsername}

// IsUnknown reports whether the user is the unknown user.
func (u User) IsUnknown() bool { return u.Username == "" || u.Username == UnknownUsername }

// Pending is what the admission webhook saw of one write attempt. It is
// only a claim until a watch event confirms that the write was persisted.
type Pending struct {
	// User who sent the request.
	User User
	// Operation of the request.
	Operation v1alpha1.Operation
	// Resource of the request (the parent resource for a subresource).
	Resource schema.GroupVersionResource
	// SubResource is e.g. "scale" or "status"; empty for the main resource.
	SubResource string
	// Namespace and Name of the object.
	Namespace, Name string
	// UID of the object (empty on CREATE with generateName before 1.x; the
	// API server sets it before validating admission).
	UID types.UID
	// OldResourceVersion is the resourceVersion the write started from;
	// empty for CREATE.
	OldResourceVersion string
	// Fingerprint of the object the request would store, after
	// sanitization; empty when unknown (DELETE, subresources).
	Fingerprint string
	// Received is when the webhook saw the request.
	Received time.Time
}

// Taint is what is left of a claim that could not be kept (the webhook's
// queue was full, the review too large, the store full): the key of the
// write it belonged to, without a user. The confirm stage hands on the
// write it marks with author Unknown, so that another claim for the same
// write (a forged one) cannot name its author.
type Taint struct {
	// Operation of the lost request; empty when it could not be read, in
	// which case every key below is marked.
	Operation v1alpha1.Operation
	// Resource of the request.
	Resource schema.GroupVersionResource
	// Namespace and Name of the object (CREATE without uid).
	Namespace, Name string
	// UID of the object.
	UID types.UID
	// OldResourceVersion is the resourceVersion the write started from
	// (UPDATE, DELETE).
	OldResourceVersion string
}

// Change is a persisted change, confirmed by the watch, with its author.
type Change struct {
	// Operation that persisted the change.
	Operation v1alpha1.Operation
	// Resource of the object.
	Resource schema.GroupVersionResource
	// Namespace and Name of the object.
	Namespace, Name string
	// UID of the object.
	UID types.UID
	// ResourceVersion of the persisted state.
	ResourceVersion string
	// Object is the persisted object; for a DELETE, the last state seen.
	Object *unstructured.Unstructured
	// OldObject is the state before an UPDATE, as the watch saw it; nil
	// otherwise.
	OldObject *unstructured.Unstructured
	// User is the author; Unknown when no admission request could be
	// tied to the change with certainty.
	User User
	// Rules are the rules that select the change.
	Rules []*rules.Rule
	// Observed is when the watch saw the change.
	Observed time.Time
	// LeftSelection marks a DELETE that is an UPDATE which moved the
	// object out of the Rules' selection (its labels stopped matching):
	// the object still exists, but its file must go. Object is the state
	// before the update, where the file was written from; User is who
	// made the update.
	LeftSelection bool
	// Trace is the span of the confirm stage, the parent of the spans the
	// later stages make for this change; zero when tracing is off.
	Trace trace.SpanContext
}

// Sink receives confirmed changes. Record must not block for long: the
// watch stage calls it from the informer's handler.
type Sink interface {
	Record(ctx context.Context, c Change)
}
