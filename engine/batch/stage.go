package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// The stage that turns one rule's view of a confirmed change into the file
// it writes: the rule's Rego policy (does it record this change?), the
// module breaker (fail closed at once while a module is known to hang), and
// render (built-in sanitizer, WASM sanitizers, layout). It runs on the
// target's worker; its failures go to the rule's health, never to the
// target.

// stage returns the file change of c under r, and false when the rule does
// not write it (policy, breaker, skipped kind, render failure).
func (b *Batcher) stage(ctx context.Context, pd *policyDecider, c change.Change, r *rules.Rule, spec v1alpha1.GitTargetSpec, s *sealer) (fileChange, bool) {
	if !c.Observed.IsZero() && c.Observed.Before(r.Active) {
		// Seen before the rule existed (the watch held it for the
		// webhook's claim while the rule arrived): the target's
		// reconcile records the object, not this change.
		b.opts.Log.V(1).Info("change predates the rule; left to the reconcile", "rule", r.Key.String(),
			"resource", c.Resource.String(), "namespace", c.Namespace, "name", c.Name)
		return fileChange{}, false
	}
	// A DELETE is never dropped by a policy: the file of an object that is
	// gone (or left the selection) must go whoever removed it
	// (docs/policies.md, "Deletes are always recorded").
	if r.Policy != nil && c.Operation != v1alpha1.OperationDelete {
		start := spanStart(c)
		d, err := redactedFor(pd, r).decide(ctx, r.Policy)
		if c.Trace.IsValid() {
			telemetry.Record(c.Trace, telemetry.SpanPolicy, start, time.Now(), telemetry.AttrRule.String(r.Key.String()),
				telemetry.AttrRecord.Bool(err != nil || d.Record))
		}
		switch {
		case err != nil:
			// Fail open: a policy that cannot evaluate loses nothing;
			// the error is counted, logged and put on the rule.
			policyErrors.Inc()
			b.opts.Log.Error(err, "policy evaluation failed; recording the change", "rule", r.Key.String(),
				"resource", c.Resource.String(), "namespace", c.Namespace, "name", c.Name)
			if b.opts.Health != nil {
				b.opts.Health.Fail(r.Key, rules.Failure{Module: policyModule, Reason: v1alpha1.ReasonPolicyEvaluationFailed,
					Message: err.Error(), Generation: r.Generation, When: time.Now()})
			}
		case !d.Record:
			policyIgnored.Inc()
			b.opts.Log.V(1).Info("ignored by policy", "rule", r.Key.String(), "resource", c.Resource.String(),
				"namespace", c.Namespace, "name", c.Name, "user", c.User.Username, "reasons", d.Reasons)
			return fileChange{}, false
		}
		if err == nil && b.opts.Health != nil {
			b.opts.Health.Recover(r.Key, policyModule)
		}
	}
	if tr, open := b.breakers.open(r, time.Now()); open {
		// Fail closed at once: the object is not written, as if the
		// module had failed again, without spending its deadline.
		moduleErrors.WithLabelValues(tr.module).Inc()
		renderErrors.Inc()
		if b.opts.Health != nil {
			b.opts.Health.Fail(r.Key, rules.Failure{Module: tr.module, Reason: tr.reason, Message: tr.message,
				Generation: r.Generation, When: time.Now()})
		}
		b.opts.Log.V(1).Info("module breaker open; change not written", "rule", r.Key.String(), "module", tr.module,
			"resource", c.Resource.String(), "namespace", c.Namespace, "name", c.Name)
		return fileChange{}, false
	}
	start := spanStart(c)
	f, err := render(ctx, c, r, spec, s)
	if c.Trace.IsValid() {
		// The built-in sanitizer, the rule's WASM sanitizers and layout.
		span := telemetry.Start(c.Trace, telemetry.SpanRender, start, telemetry.AttrRule.String(r.Key.String()))
		if err != nil && !errors.Is(err, transform.ErrSkipped) {
			span.SetStatus(codes.Error, "render failed")
		}
		span.End()
	}
	if errors.Is(err, transform.ErrSkipped) {
		return fileChange{}, false
	}
	b.encryptionHealth(r, c, err)
	if me := b.moduleFailed(r, err); me != nil {
		if b.opts.Health != nil {
			b.opts.Health.Fail(r.Key, rules.Failure{Module: me.module, Reason: me.reason, Message: me.Error(),
				Generation: r.Generation, When: time.Now()})
		}
	} else if err == nil && b.opts.Health != nil {
		for _, m := range r.Sanitizers {
			b.opts.Health.Recover(r.Key, m.Name)
		}
		if r.Layout != nil {
			b.opts.Health.Recover(r.Key, r.Layout.Name)
		}
	}
	if err != nil {
		renderErrors.Inc()
		b.opts.Log.Error(err, "rendering change", "rule", r.Key.String(), "resource", c.Resource.String(),
			"namespace", c.Namespace, "name", c.Name)
		return fileChange{}, false
	}
	if c.Operation != v1alpha1.OperationDelete {
		// A delete carries no reason: the one on the object's last state
		// was given with an earlier write.
		f.why = strings.Join(change.EscapeWhy(transform.Why(c.Object, c.OldObject)), "\n")
	}
	return f, true
}

// encryptionHealth puts a failed encryption on the rule's condition, and
// clears it when an encryption of the rule succeeds again.
func (b *Batcher) encryptionHealth(r *rules.Rule, c change.Change, err error) {
	if b.opts.Health == nil {
		return
	}
	var ee *encryptionError
	switch {
	case errors.As(err, &ee):
		b.opts.Health.Fail(r.Key, rules.Failure{Module: encryptionModule, Reason: v1alpha1.ReasonEncryptionFailed,
			Message: fmt.Sprintf("%s not written: %s", objectName(c), ee.Error()), Generation: r.Generation, When: time.Now()})
	case err == nil && encrypts(r, c.Object, secretFieldsOf(r, c.Object)):
		b.opts.Health.Recover(r.Key, encryptionModule)
	}
}

// redactedFor returns the policy decider for r: pd itself, or one whose
// input has the secret fields the rule names for the object's kind
// redacted (policies never see a Secret's values, nor these).
func redactedFor(pd *policyDecider, r *rules.Rule) *policyDecider {
	fields := secretFieldsOf(r, pd.c.Object)
	if len(fields) == 0 {
		return pd
	}
	c := pd.c
	if c.Object != nil {
		c.Object = &unstructured.Unstructured{Object: transform.RedactFields(c.Object.Object, fields)}
	}
	if c.OldObject != nil {
		c.OldObject = &unstructured.Unstructured{Object: transform.RedactFields(c.OldObject.Object, fields)}
		if c.Object != nil {
			// A value change must not read as a status-only update.
			transform.MarkChangedFields(c.Object.Object, pd.c.Object.Object, pd.c.OldObject.Object, fields)
		}
	}
	return &policyDecider{c: c}
}

// spanStart is the start of a stage's span: now when c is traced.
func spanStart(c change.Change) time.Time {
	if c.Trace.IsValid() {
		return time.Now()
	}
	return time.Time{}
}

// moduleFailed counts a module's failure and feeds the rule's breaker; it
// returns the failure, or nil when err is not a module's.
func (b *Batcher) moduleFailed(r *rules.Rule, err error) *moduleError {
	var me *moduleError
	if !errors.As(err, &me) {
		return nil
	}
	moduleErrors.WithLabelValues(me.module).Inc()
	b.breakers.record(r, me, time.Now())
	return me
}
