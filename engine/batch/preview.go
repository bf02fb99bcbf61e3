package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
	"github.com/gitops-reverser/gitops-reverser/engine/reconcile"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// The seams the reverser CLI uses: the stages a change passes on the
// target's worker (policy, render), without the worker, the breakers, the
// health or the metrics. They are the same functions, so what the CLI
// prints is what the operator would commit.

// Preview is what one rule does with one change.
type Preview struct {
	// Decision is the policy's decision; nil when the rule has no policy
	// or the change is a DELETE (never dropped by a policy).
	Decision *policy.Decision
	// Recorded is false when the policy ignores the change or the rule
	// skips the object (Secrets with secrets: Skip).
	Recorded bool
	// Skipped is true when the rule skips the object's kind.
	Skipped bool
	// Path is the file's repository path; empty when not recorded.
	Path string
	// Content is the file's YAML; nil for a DELETE or when not recorded.
	Content []byte
	// Delete is true when the change removes the file.
	Delete bool
}

// PreviewChange runs c through r's policy and render as the target's worker
// does for a confirmed change. Unlike the worker, which fails open, a policy
// that cannot evaluate is an error here; a module failure is an error as it
// is for the worker (fail closed).
func PreviewChange(ctx context.Context, c change.Change, r *rules.Rule, spec v1alpha1.GitTargetSpec) (Preview, error) {
	var out Preview
	if r.Policy != nil && c.Operation != v1alpha1.OperationDelete {
		pd := policyDecider{c: c}
		d, err := pd.decide(ctx, r.Policy)
		if err != nil {
			return out, err
		}
		out.Decision = &d
		if !d.Record {
			return out, nil
		}
	}
	f, err := render(ctx, c, r, spec, nil) // offline: a rule that encrypts fails closed for Secrets
	if errors.Is(err, transform.ErrSkipped) {
		out.Skipped = true
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Recorded, out.Path, out.Content, out.Delete = true, f.path, f.content, f.delete
	return out, nil
}

// reconcileChange is the change a reconcile renders for an existing object:
// a CREATE by ReconcileUser, observed at now.
func reconcileChange(r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, now time.Time) change.Change {
	return change.Change{Operation: v1alpha1.OperationCreate, Resource: gvr, Namespace: obj.GetNamespace(),
		Name: obj.GetName(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), Object: obj,
		User: change.User{Username: ReconcileUser}, Rules: []*rules.Rule{r}, Observed: now}
}

// SnapshotRender returns the reconcile.RenderFunc of a one-off snapshot
// into spec's base path: the stages a reconcile runs for each object (the
// rule's policy as a CREATE by ReconcileUser, failing open; the built-in
// sanitizer, the WASM sanitizers and the layout, failing closed for the
// object). onError, when set, hears each object whose render failed.
func SnapshotRender(spec v1alpha1.GitTargetSpec, onError func(r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, err error)) reconcile.RenderFunc {
	return func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (string, []byte, error) {
		c := reconcileChange(r, gvr, obj, time.Now())
		if r.Policy != nil {
			pd := policyDecider{c: c}
			if d, err := pd.decide(ctx, r.Policy); err == nil && !d.Record {
				return "", nil, reconcile.ErrNotRecorded
			}
		}
		f, err := render(ctx, c, r, spec, nil) // offline: a rule that encrypts fails closed for Secrets
		if errors.Is(err, transform.ErrSkipped) {
			return "", nil, reconcile.ErrNotRecorded
		}
		if err != nil {
			if onError != nil {
				onError(r, gvr, obj, err)
			}
			return "", nil, fmt.Errorf("rendering %s %s: %w", gvr.Resource, objectName(c), err)
		}
		return f.path, f.content, nil
	}
}
