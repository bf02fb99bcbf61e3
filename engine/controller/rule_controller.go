package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// targetRefIndex indexes rules by the GitTarget they reference
// (namespace/name).
const targetRefIndex = ".spec.targetRef"

// policyRefIndex indexes rules by the policy ConfigMap they reference
// (namespace/name).
const policyRefIndex = ".spec.policy.configMapRef"

// RuleReconciler reconciles WatchRules and ClusterWatchRules: it resolves
// their resources through discovery, checks their GitTarget, and keeps the
// rule index in step. One type serves both kinds; Cluster selects which.
type RuleReconciler struct {
	client.Client
	// APIReader reads policy ConfigMaps straight from the API server; the
	// cache holds only their metadata.
	APIReader client.Reader
	// Mapper resolves resources through the API server's discovery.
	Mapper meta.RESTMapper
	// Policies compiles Rego policies once per revision.
	Policies *policy.Registry
	// Modules loads WASM sanitizers and layouts; nil refuses rules that
	// name modules.
	Modules ModuleLoader
	// Health holds runtime failures of the rules' modules.
	Health *rules.Health
	// HealthEvents requeues a rule whose health changed.
	HealthEvents <-chan event.GenericEvent

	loaded loadedModules
	// Index receives the resolved rules.
	Index *rules.Index
	// Recorder emits events; event reasons equal condition reasons.
	Recorder events.EventRecorder
	// Cluster is true for the ClusterWatchRule reconciler.
	Cluster bool
	// RetryInterval is how soon a rule whose target, policy or module
	// is not ready is checked again.
	RetryInterval time.Duration
	// ResolveInterval is how soon a rule that names a resource the API
	// server does not serve is resolved again when nothing announced it;
	// a CustomResourceDefinition that serves it triggers a resolve within
	// a second. Zero means 5 minutes (aggregated APIs have no CRD).
	ResolveInterval time.Duration

	// waiting remembers, per rule, the resources it names that are not
	// served, so that a CRD event finds the rules to resolve again.
	waiting waitingRules
}

// +kubebuilder:rbac:groups=reverser.gitops-reverser.dev,resources=watchrules;clusterwatchrules,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=reverser.gitops-reverser.dev,resources=watchrules/status;clusterwatchrules/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=reverser.gitops-reverser.dev,resources=gittargets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

// ruleObject is what both rule kinds offer the reconciler.
type ruleObject interface {
	conditioned
	client.Object
}

func (r *RuleReconciler) kind() rules.Kind {
	if r.Cluster {
		return rules.KindClusterWatchRule
	}
	return rules.KindWatchRule
}

func (r *RuleReconciler) newObject() ruleObject {
	if r.Cluster {
		return &v1alpha1.ClusterWatchRule{}
	}
	return &v1alpha1.WatchRule{}
}

// Reconcile resolves one rule and updates the index and the rule's status.
func (r *RuleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := rules.Key{Kind: r.kind(), Namespace: req.Namespace, Name: req.Name}
	if r.waiting.announced(key, time.Now()) {
		// A CRD this rule waits for changed: ask discovery afresh.
		r.resetMapper()
	}
	obj := r.newObject()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(key)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("reading %s: %w", key, err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		r.forget(key)
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))

	compiled, o := r.build(ctx, key, obj)
	if o.ready {
		r.Index.Upsert(compiled)
		r.loaded.swap(ctx, key, compiled.Modules())
		if r.Health != nil {
			if f, failing := r.Health.Failure(key, obj.GetGeneration()); failing {
				// Still indexed: other objects may pass; the failing ones
				// are kept out of Git (fail closed) and the rule says why.
				o = outcome{reason: f.Reason, message: f.Message}
			}
		}
	} else {
		r.Index.Delete(key)
		r.loaded.swap(ctx, key, nil)
		if compiled != nil {
			compiled.ReleaseModules(ctx)
		}
	}
	summarize(obj, o, r.Recorder)
	status := r.status(obj)
	status.ObservedGeneration = obj.GetGeneration()
	status.Resources = nil
	if compiled != nil && compiled.Policy != nil {
		status.PolicyRevision = compiled.Policy.Revision()
	}
	if compiled != nil {
		for _, res := range compiled.Resources {
			status.Resources = append(status.Resources, res.GVR.String())
		}
	}
	if err := r.Status().Patch(ctx, obj, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching status of %s: %w", key, err)
	}
	log.FromContext(ctx).V(1).Info("reconciled rule", "rule", key.String(), "ready", o.ready, "reason", o.reason)
	if o.waitsForResources {
		after := r.resolveAgain(key)
		if o.transient && after > r.retryInterval() {
			after = r.retryInterval()
		}
		return ctrl.Result{RequeueAfter: after}, nil
	}
	if !o.ready {
		return ctrl.Result{RequeueAfter: r.retryInterval()}, nil
	}
	return ctrl.Result{}, nil
}

// resolveAgain is when a rule waiting for resources is resolved again: soon
// while a CRD it waits for was just announced (discovery follows a CRD's
// Established condition by a moment), else after ResolveInterval.
func (r *RuleReconciler) resolveAgain(key rules.Key) time.Duration {
	if r.waiting.announced(key, time.Now()) {
		return time.Second
	}
	if r.ResolveInterval > 0 {
		return r.ResolveInterval
	}
	return 5 * time.Minute
}

func (r *RuleReconciler) resetMapper() {
	if m, ok := r.Mapper.(meta.ResettableRESTMapper); ok {
		m.Reset()
	}
}

func (r *RuleReconciler) forget(key rules.Key) {
	r.waiting.set(key, nil)
	r.Index.Delete(key)
	r.loaded.swap(context.Background(), key, nil)
	if r.Policies != nil {
		r.Policies.Forget(key.String())
	}
}

func (r *RuleReconciler) status(obj ruleObject) *v1alpha1.RuleStatus {
	switch o := obj.(type) {
	case *v1alpha1.ClusterWatchRule:
		return &o.Status
	case *v1alpha1.WatchRule:
		return &o.Status
	}
	return &v1alpha1.RuleStatus{}
}

// build resolves the rule. It returns the compiled rule (possibly partial,
// for the status) and the outcome.
func (r *RuleReconciler) build(ctx context.Context, key rules.Key, obj ruleObject) (*rules.Rule, outcome) {
	var spec v1alpha1.RuleSpec
	var target types.NamespacedName
	compiled := &rules.Rule{Key: key, Generation: obj.GetGeneration()}
	switch o := obj.(type) {
	case *v1alpha1.WatchRule:
		spec = o.Spec.RuleSpec
		target = types.NamespacedName{Namespace: o.Namespace, Name: o.Spec.TargetRef.Name}
		compiled.Namespace = o.Namespace
	case *v1alpha1.ClusterWatchRule:
		spec = o.Spec.RuleSpec
		target = types.NamespacedName{Namespace: o.Spec.TargetRef.Namespace, Name: o.Spec.TargetRef.Name}
		sel, err := rules.Selector("namespaceSelector", o.Spec.NamespaceSelector)
		if err != nil {
			return nil, failed(err)
		}
		compiled.NamespaceLabels = sel
	}
	compiled.Spec = spec
	compiled.Target = target
	compiled.Operations = rules.Operations(spec.Operations)
	sel, err := rules.Selector("labelSelector", spec.LabelSelector)
	if err != nil {
		return nil, failed(err)
	}
	compiled.Labels = sel

	resolution, err := rules.ResolveResources(r.Mapper, spec.Resources, r.Cluster)
	if err != nil {
		r.waiting.set(key, nil)
		return nil, failed(err)
	}
	r.waiting.set(key, resolution.Missing)
	if len(resolution.Resources) == 0 && len(resolution.Missing) > 0 {
		msgs := make([]string, 0, len(resolution.Missing))
		for _, m := range resolution.Missing {
			msgs = append(msgs, m.Err.Error())
		}
		return nil, outcome{stalled: true, waitsForResources: true, transient: resolution.Transient(),
			reason: v1alpha1.ReasonResourceNotFound, message: strings.Join(msgs, "; ")}
	}
	compiled.Resources = resolution.Resources

	if r.Policies != nil {
		policy, o, ok := r.policy(ctx, key, spec, policyNamespace(obj, target))
		if !ok {
			return compiled, o
		}
		compiled.Policy = policy
	}
	if o, ok := r.modules(ctx, compiled, spec, policyNamespace(obj, target)); !ok {
		return compiled, o
	}

	gt := &v1alpha1.GitTarget{}
	if err := r.Get(ctx, target, gt); err != nil {
		if apierrors.IsNotFound(err) {
			return compiled, outcome{reason: v1alpha1.ReasonTargetNotFound,
				message: fmt.Sprintf("GitTarget %q not found in namespace %q", target.Name, target.Namespace)}
		}
		return compiled, outcome{reason: v1alpha1.ReasonTargetNotFound, message: fmt.Sprintf("reading GitTarget %s: %v", target, err)}
	}
	// A target whose remote is only unreachable keeps its rules: changes
	// wait in order in its worker (journaled, committed locally) and are
	// pushed when the remote is back. A target whose spec or Secret is
	// unusable (missing Secret, invalid URL, refused credentials...)
	// stops them: there is no working repository to wait for.
	if ready := meta.FindStatusCondition(gt.Status.Conditions, v1alpha1.ReadyCondition); ready == nil ||
		(ready.Status != "True" && ready.Reason != v1alpha1.ReasonRemoteUnreachable) {
		msg := fmt.Sprintf("GitTarget %s is not ready", target)
		if ready != nil {
			msg = fmt.Sprintf("GitTarget %s is not ready: %s: %s", target, ready.Reason, ready.Message)
		}
		return compiled, outcome{reason: v1alpha1.ReasonTargetNotReady, message: msg}
	}
	if len(resolution.Missing) > 0 {
		// Record what resolves now; name what does not.
		return compiled, outcome{ready: true, waitsForResources: true, transient: resolution.Transient(), reason: v1alpha1.ReasonPartiallyActive,
			message: fmt.Sprintf("recording %d resource(s) to GitTarget %s; not served by the API server yet: %s",
				len(resolution.Resources), target, strings.Join(resolution.MissingNames(), ", "))}
	}
	return compiled, outcome{ready: true, reason: v1alpha1.ReasonRuleActive,
		message: fmt.Sprintf("recording %d resource(s) to GitTarget %s", len(resolution.Resources), target)}
}

// modules loads the rule's sanitizers and layout. Any failure (missing
// source, digest mismatch, missing export, wrong ABI version) is a
// condition naming the module.
func (r *RuleReconciler) modules(ctx context.Context, compiled *rules.Rule, spec v1alpha1.RuleSpec, ns string) (outcome, bool) {
	if len(spec.Sanitizers) == 0 && spec.Layout == nil {
		return outcome{}, true
	}
	if r.Modules == nil {
		return outcome{stalled: true, reason: v1alpha1.ReasonModuleInvalid, message: "WASM modules are not enabled in this operator"}, false
	}
	load := func(ref v1alpha1.ModuleReference, role string) (*rules.ModuleUse, outcome, bool) {
		m, err := r.Modules.Load(ctx, ns, ref)
		if err != nil {
			return nil, outcome{stalled: true, reason: v1alpha1.ReasonModuleInvalid,
				message: fmt.Sprintf("%s %q: %s: %v", role, ref.Name, plugin.ReasonOf(err), err)}, false
		}
		use := &rules.ModuleUse{Name: ref.Name, Module: m}
		if ref.Settings != nil {
			use.Settings = ref.Settings.Raw
		}
		return use, outcome{}, true
	}
	for _, ref := range spec.Sanitizers {
		use, o, ok := load(ref, "sanitizer")
		if !ok {
			compiled.ReleaseModules(ctx)
			return o, false
		}
		compiled.Sanitizers = append(compiled.Sanitizers, *use)
		if !use.Module.HasSanitize() {
			compiled.ReleaseModules(ctx)
			return outcome{stalled: true, reason: v1alpha1.ReasonModuleInvalid,
				message: fmt.Sprintf("sanitizer %q: MissingExport: the module exports no sanitize function", ref.Name)}, false
		}
	}
	if ref := spec.Layout; ref != nil {
		use, o, ok := load(*ref, "layout")
		if !ok {
			compiled.ReleaseModules(ctx)
			return o, false
		}
		compiled.Layout = use
		if !use.Module.HasLayout() {
			compiled.ReleaseModules(ctx)
			return outcome{stalled: true, reason: v1alpha1.ReasonModuleInvalid,
				message: fmt.Sprintf("layout %q: MissingExport: the module exports no layout function", ref.Name)}, false
		}
	}
	return outcome{}, true
}

// policyNamespace is where a rule's policy ConfigMap lives: the rule's
// namespace, or the GitTarget's for a ClusterWatchRule.
func policyNamespace(obj ruleObject, target types.NamespacedName) string {
	if obj.GetNamespace() != "" {
		return obj.GetNamespace()
	}
	return target.Namespace
}

// policy gathers the rule's Rego modules and compiles them with the
// defaults. A missing ConfigMap or a compile error is a condition with the
// compiler's message, never a crash.
func (r *RuleReconciler) policy(ctx context.Context, key rules.Key, spec v1alpha1.RuleSpec, ns string) (*policy.Policy, outcome, bool) {
	modules := map[string]string{}
	if p := spec.Policy; p != nil {
		if p.Inline != "" {
			modules[fmt.Sprintf("rule/%s/inline.rego", key)] = p.Inline
		}
		if ref := p.ConfigMapRef; ref != nil {
			cm := &corev1.ConfigMap{}
			if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, cm); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, outcome{reason: v1alpha1.ReasonPolicyNotFound,
						message: fmt.Sprintf("policy ConfigMap %q not found in namespace %q", ref.Name, ns)}, false
				}
				return nil, outcome{reason: v1alpha1.ReasonPolicyNotFound,
					message: fmt.Sprintf("reading policy ConfigMap %s/%s: %v", ns, ref.Name, err)}, false
			}
			if cm.Labels[v1alpha1.PolicyLabel] != "true" {
				return nil, outcome{stalled: true, reason: v1alpha1.ReasonPolicyInvalid,
					message: fmt.Sprintf("ConfigMap %s/%s lacks the label %s=true", ns, ref.Name, v1alpha1.PolicyLabel)}, false
			}
			n := 0
			for k, src := range cm.Data {
				if strings.HasSuffix(k, ".rego") && !strings.HasSuffix(k, "_test.rego") {
					modules[fmt.Sprintf("configmap/%s/%s/%s", ns, ref.Name, k)] = src
					n++
				}
			}
			if n == 0 {
				return nil, outcome{stalled: true, reason: v1alpha1.ReasonPolicyInvalid,
					message: fmt.Sprintf("ConfigMap %s/%s has no key ending in .rego", ns, ref.Name)}, false
			}
		}
	}
	p, err := r.Policies.Get(key.String(), modules)
	if err != nil {
		return nil, outcome{stalled: true, reason: v1alpha1.ReasonPolicyInvalid, message: err.Error()}, false
	}
	return p, outcome{}, true
}

func failed(err error) outcome {
	var re *rules.ResolveError
	if errors.As(err, &re) {
		return outcome{stalled: true, reason: re.Reason, message: re.Error()}
	}
	return outcome{stalled: true, reason: v1alpha1.ReasonResourceNotFound, message: err.Error()}
}

func (r *RuleReconciler) retryInterval() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return 30 * time.Second
}

// SetupWithManager registers the reconciler; a change of a GitTarget
// requeues the rules that reference it.
func (r *RuleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	obj := r.newObject()
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), obj, targetRefIndex, func(o client.Object) []string {
		switch rule := o.(type) {
		case *v1alpha1.WatchRule:
			return []string{rule.Namespace + "/" + rule.Spec.TargetRef.Name}
		case *v1alpha1.ClusterWatchRule:
			return []string{rule.Spec.TargetRef.Namespace + "/" + rule.Spec.TargetRef.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing %s by target: %w", r.kind(), err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), r.newObject(), policyRefIndex, func(o client.Object) []string {
		var spec v1alpha1.RuleSpec
		var target types.NamespacedName
		switch rule := o.(type) {
		case *v1alpha1.WatchRule:
			spec, target = rule.Spec.RuleSpec, types.NamespacedName{Namespace: rule.Namespace}
		case *v1alpha1.ClusterWatchRule:
			spec, target = rule.Spec.RuleSpec, types.NamespacedName{Namespace: rule.Spec.TargetRef.Namespace}
		}
		if spec.Policy == nil || spec.Policy.ConfigMapRef == nil {
			return nil
		}
		return []string{target.Namespace + "/" + spec.Policy.ConfigMapRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing %s by policy: %w", r.kind(), err)
	}
	name := "watchrule"
	if r.Cluster {
		name = "clusterwatchrule"
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(obj, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.GitTarget{}, handler.EnqueueRequestsFromMapFunc(r.rulesForTarget)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.rulesForPolicy), builder.OnlyMetadata).
		Watches(crdMetadata(), handler.EnqueueRequestsFromMapFunc(r.rulesForCRD))
	if r.HealthEvents != nil {
		b = b.WatchesRawSource(source.Channel(r.HealthEvents, &handler.EnqueueRequestForObject{}))
	}
	err := b.
		Named(name).
		Complete(r)
	if err != nil {
		return fmt.Errorf("building the %s controller: %w", r.kind(), err)
	}
	return nil
}

// rulesForPolicy requeues the rules that reference a policy ConfigMap, so
// an edited policy takes effect within seconds.
func (r *RuleReconciler) rulesForPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	return r.rulesMatching(ctx, o, client.MatchingFields{policyRefIndex: o.GetNamespace() + "/" + o.GetName()})
}

func (r *RuleReconciler) rulesForTarget(ctx context.Context, o client.Object) []reconcile.Request {
	return r.rulesMatching(ctx, o, client.MatchingFields{targetRefIndex: o.GetNamespace() + "/" + o.GetName()})
}

func (r *RuleReconciler) rulesMatching(ctx context.Context, o client.Object, field client.MatchingFields) []reconcile.Request {
	var out []reconcile.Request
	if r.Cluster {
		list := &v1alpha1.ClusterWatchRuleList{}
		if err := r.List(ctx, list, field); err != nil {
			log.FromContext(ctx).Error(err, "listing ClusterWatchRules", "for", client.ObjectKeyFromObject(o))
			return nil
		}
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return out
	}
	list := &v1alpha1.WatchRuleList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), field); err != nil {
		log.FromContext(ctx).Error(err, "listing WatchRules", "for", client.ObjectKeyFromObject(o))
		return nil
	}
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}
