// Package offline runs a rule's stages outside the operator, for the
// reverser CLI: it receives rules, policy ConfigMaps and WASM modules as
// files, and hands on what the operator would write: for one object (Eval)
// or for everything a live cluster holds that the rules select (Snapshot).
// The stages are the operator's own (engine/policy, engine/plugin,
// engine/transform and engine/batch's render, engine/reconcile's plan);
// this package only loads their inputs from files and writes their output.
package offline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/policies"
)

// Documents splits YAML or JSON input (several documents separated by
// "---", a v1 List, or `kubectl get -o yaml` output) into objects.
func Documents(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("parsing YAML/JSON document %d: %w", len(out)+1, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" || string(t) == "{}" {
			continue
		}
		// The JSON scheme keeps integers as int64, as the API server's
		// objects have them (a generic decode would make them floats).
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("reading document %d: %w", len(out)+1, err)
		}
		switch o := obj.(type) {
		case *unstructured.UnstructuredList:
			for i := range o.Items {
				out = append(out, &o.Items[i])
			}
		case *unstructured.Unstructured:
			out = append(out, o)
		}
	}
}

// Inputs are the files a rule needs, parsed.
type Inputs struct {
	// Objects are every document given: rules (WatchRule,
	// ClusterWatchRule), policy ConfigMaps, a GitTarget.
	Objects []*unstructured.Unstructured
	// Modules are WASM module bytes by the module's name in the rule.
	Modules map[string][]byte
}

// RuleObjects returns the WatchRules and ClusterWatchRules among the
// inputs, in their order.
func (in Inputs) RuleObjects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range in.Objects {
		if o.GroupVersionKind().Group == v1alpha1.GroupVersion.Group &&
			(o.GetKind() == string(rules.KindWatchRule) || o.GetKind() == string(rules.KindClusterWatchRule)) {
			out = append(out, o)
		}
	}
	return out
}

// Target returns the GitTarget spec among the inputs, or an empty spec
// (base path at the repository root).
func (in Inputs) Target() (v1alpha1.GitTargetSpec, error) {
	for _, o := range in.Objects {
		if o.GroupVersionKind().Group == v1alpha1.GroupVersion.Group && o.GetKind() == "GitTarget" {
			gt := &v1alpha1.GitTarget{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, gt); err != nil {
				return v1alpha1.GitTargetSpec{}, fmt.Errorf("reading GitTarget %s: %w", o.GetName(), err)
			}
			return gt.Spec, nil
		}
	}
	return v1alpha1.GitTargetSpec{}, nil
}

// configMap returns the ConfigMap named name among the inputs; the
// namespace is checked only when both have one.
func (in Inputs) configMap(namespace, name string) (*corev1.ConfigMap, error) {
	for _, o := range in.Objects {
		if o.GetAPIVersion() != "v1" || o.GetKind() != "ConfigMap" || o.GetName() != name {
			continue
		}
		if namespace != "" && o.GetNamespace() != "" && o.GetNamespace() != namespace {
			continue
		}
		cm := &corev1.ConfigMap{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, cm); err != nil {
			return nil, fmt.Errorf("reading ConfigMap %s: %w", name, err)
		}
		return cm, nil
	}
	return nil, nil
}

// Loader builds rules from inputs as the operator's rule controller does:
// the policy compiled with the defaults, the modules loaded into a WASM
// host and checked against their pinned sha256.
type Loader struct {
	// Host runs the modules.
	Host *plugin.Host
	// Policies compiles policies with the defaults.
	Policies *policy.Registry
}

// PolicyTimeout bounds one policy evaluation in the CLI. It is longer than
// the operator's policy.DefaultTimeout: a short-lived process evaluates
// cold (the first evaluation warms OPA's caches), on a laptop or a loaded
// CI runner, and an answer is worth more here than a bounded latency.
const PolicyTimeout = 5 * time.Second

// NewLoader returns a Loader with its own WASM host and the default
// policies; Close releases the host.
func NewLoader(ctx context.Context) (*Loader, error) {
	defaults, err := policies.Defaults()
	if err != nil {
		return nil, err
	}
	host, err := plugin.NewHost(ctx, plugin.Options{})
	if err != nil {
		return nil, fmt.Errorf("starting the WASM host: %w", err)
	}
	return &Loader{Host: host, Policies: policy.NewRegistry(defaults, policy.Options{Timeout: PolicyTimeout})}, nil
}

// Close releases the WASM host.
func (l *Loader) Close(ctx context.Context) error {
	if err := l.Host.Close(ctx); err != nil {
		return fmt.Errorf("closing the WASM host: %w", err)
	}
	return nil
}

// Rule builds the rule of obj (a WatchRule or ClusterWatchRule). With a
// mapper its resources are resolved through it (a live cluster's
// discovery) and a resource it does not serve is an error; without one
// Resources stay empty for the caller to fill.
func (l *Loader) Rule(ctx context.Context, obj *unstructured.Unstructured, in Inputs, mapper meta.RESTMapper) (*rules.Rule, error) {
	var spec v1alpha1.RuleSpec
	compiled := &rules.Rule{Generation: obj.GetGeneration()}
	policyNS := obj.GetNamespace()
	switch obj.GetKind() {
	case string(rules.KindWatchRule):
		wr := &v1alpha1.WatchRule{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, wr); err != nil {
			return nil, fmt.Errorf("reading WatchRule %s: %w", obj.GetName(), err)
		}
		if wr.Namespace == "" {
			wr.Namespace = "default"
			policyNS = "default"
		}
		spec = wr.Spec.RuleSpec
		compiled.Key = rules.Key{Kind: rules.KindWatchRule, Namespace: wr.Namespace, Name: wr.Name}
		compiled.Namespace = wr.Namespace
		compiled.Target = types.NamespacedName{Namespace: wr.Namespace, Name: wr.Spec.TargetRef.Name}
	case string(rules.KindClusterWatchRule):
		cr := &v1alpha1.ClusterWatchRule{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, cr); err != nil {
			return nil, fmt.Errorf("reading ClusterWatchRule %s: %w", obj.GetName(), err)
		}
		spec = cr.Spec.RuleSpec
		compiled.Key = rules.Key{Kind: rules.KindClusterWatchRule, Name: cr.Name}
		compiled.Target = types.NamespacedName{Namespace: cr.Spec.TargetRef.Namespace, Name: cr.Spec.TargetRef.Name}
		policyNS = cr.Spec.TargetRef.Namespace
		sel, err := rules.Selector("namespaceSelector", cr.Spec.NamespaceSelector)
		if err != nil {
			return nil, err
		}
		compiled.NamespaceLabels = sel
	default:
		return nil, fmt.Errorf("%s %s is not a WatchRule or ClusterWatchRule", obj.GetKind(), obj.GetName())
	}
	if spec.Secrets == "" {
		spec.Secrets = v1alpha1.SecretRedact // the CRD's default
	}
	compiled.Spec = spec
	compiled.Operations = rules.Operations(spec.Operations)
	sel, err := rules.Selector("labelSelector", spec.LabelSelector)
	if err != nil {
		return nil, err
	}
	compiled.Labels = sel
	if mapper != nil {
		res, err := rules.ResolveResources(mapper, spec.Resources, compiled.Key.Kind == rules.KindClusterWatchRule)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", compiled.Key, err)
		}
		if len(res.Missing) > 0 {
			return nil, fmt.Errorf("%s: not served by the API server: %s", compiled.Key, strings.Join(res.MissingNames(), ", "))
		}
		compiled.Resources = res.Resources
	}
	if compiled.Policy, err = l.policy(compiled.Key, spec, policyNS, in); err != nil {
		return nil, err
	}
	if err := l.modules(ctx, compiled, spec, in); err != nil {
		compiled.ReleaseModules(ctx)
		return nil, err
	}
	return compiled, nil
}

// policy gathers the rule's Rego modules under the names the operator
// gives them (so compiler messages match the rule's condition) and
// compiles them with the defaults.
func (l *Loader) policy(key rules.Key, spec v1alpha1.RuleSpec, ns string, in Inputs) (*policy.Policy, error) {
	modules := map[string]string{}
	if p := spec.Policy; p != nil {
		if p.Inline != "" {
			modules[fmt.Sprintf("rule/%s/inline.rego", key)] = p.Inline
		}
		if ref := p.ConfigMapRef; ref != nil {
			cm, err := in.configMap(ns, ref.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				return nil, fmt.Errorf("%s: policy ConfigMap %q not given (--policy FILE)", key, ref.Name)
			}
			if cm.Labels[v1alpha1.PolicyLabel] != "true" {
				return nil, fmt.Errorf("%s: ConfigMap %s lacks the label %s=true", key, ref.Name, v1alpha1.PolicyLabel)
			}
			names := make([]string, 0, len(cm.Data))
			for k := range cm.Data {
				if strings.HasSuffix(k, ".rego") && !strings.HasSuffix(k, "_test.rego") {
					names = append(names, k)
				}
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("%s: ConfigMap %s has no key ending in .rego", key, ref.Name)
			}
			sort.Strings(names)
			for _, k := range names {
				modules[fmt.Sprintf("configmap/%s/%s/%s", ns, ref.Name, k)] = cm.Data[k]
			}
		}
	}
	p, err := l.Policies.Get(key.String(), modules)
	if err != nil {
		return nil, err // the registry names the rule and the compiler's problems
	}
	return p, nil
}

// modules loads the rule's sanitizers and layout from in.Modules.
func (l *Loader) modules(ctx context.Context, compiled *rules.Rule, spec v1alpha1.RuleSpec, in Inputs) error {
	load := func(ref v1alpha1.ModuleReference, role string) (*rules.ModuleUse, error) {
		wasm, ok := in.Modules[ref.Name]
		if !ok {
			return nil, fmt.Errorf("%s %q: module file not given (--module %s=FILE.wasm)", role, ref.Name, ref.Name)
		}
		m, err := l.Host.Load(ctx, wasm, ref.Source.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %s: %w", role, ref.Name, plugin.ReasonOf(err), err)
		}
		use := &rules.ModuleUse{Name: ref.Name, Module: m}
		if ref.Settings != nil {
			use.Settings = ref.Settings.Raw
		}
		return use, nil
	}
	for _, ref := range spec.Sanitizers {
		use, err := load(ref, "sanitizer")
		if err != nil {
			return err
		}
		compiled.Sanitizers = append(compiled.Sanitizers, *use)
		if !use.Module.HasSanitize() {
			return fmt.Errorf("sanitizer %q: MissingExport: the module exports no sanitize function", ref.Name)
		}
	}
	if ref := spec.Layout; ref != nil {
		use, err := load(*ref, "layout")
		if err != nil {
			return err
		}
		compiled.Layout = use
		if !use.Module.HasLayout() {
			return fmt.Errorf("layout %q: MissingExport: the module exports no layout function", ref.Name)
		}
	}
	return nil
}
