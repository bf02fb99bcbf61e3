package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/batch"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// EvalOptions say how an object given as a plain file is seen.
type EvalOptions struct {
	// Operation of the change; empty means CREATE. An AdmissionReview
	// brings its own.
	Operation v1alpha1.Operation
	// User is the author the policy sees; empty means unknown. An
	// AdmissionReview brings its own.
	User change.User
	// Resource overrides the plural resource guessed from the kind.
	Resource string
}

// Result is what a rule does with one object.
type Result struct {
	// Rule is the rule's key (Kind/namespace/name).
	Rule string `json:"rule"`
	// Resource, Namespace, Name and Operation identify the change.
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Operation string `json:"operation"`
	// User is the author the policy saw.
	User string `json:"user"`
	// Selected is false when the rule's resources, operations, namespace
	// or selectors do not take the object.
	Selected bool `json:"selected"`
	// Record is true when a file is written or removed.
	Record bool `json:"record"`
	// Reasons explain the decision: the policy's, or why not selected.
	Reasons []string `json:"reasons,omitempty"`
	// Labels are the policy's commit labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Path is the file's repository path.
	Path string `json:"path,omitempty"`
	// Delete is true when the change removes the file.
	Delete bool `json:"delete,omitempty"`
	// YAML is the file's content.
	YAML string `json:"yaml,omitempty"`
}

// ChangeOf builds the change an input document stands for: an
// AdmissionReview's request, or an object as a CREATE (or opts.Operation).
func ChangeOf(doc *unstructured.Unstructured, ruleSpec v1alpha1.RuleSpec, opts EvalOptions) (change.Change, error) {
	if doc.GetKind() == "AdmissionReview" {
		return admissionChange(doc)
	}
	op := opts.Operation
	if op == "" {
		op = v1alpha1.OperationCreate
	}
	gvk := doc.GroupVersionKind()
	resource := opts.Resource
	if resource == "" {
		resource = guessResource(gvk, ruleSpec)
	}
	user := opts.User
	if user.Username == "" {
		user = change.Unknown
	}
	return change.Change{Operation: op, Resource: schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: resource},
		Namespace: doc.GetNamespace(), Name: doc.GetName(), UID: doc.GetUID(), ResourceVersion: doc.GetResourceVersion(),
		Object: doc, User: user, Observed: time.Now()}, nil
}

// guessResource is the plural resource of gvk: the rule's own name for it
// when one of its resources fits, else the usual lower-case plural.
func guessResource(gvk schema.GroupVersionKind, spec v1alpha1.RuleSpec) string {
	plural, singular := meta.UnsafeGuessKindToResource(gvk)
	for _, sel := range spec.Resources {
		groups := sel.APIGroups
		if len(groups) == 0 {
			groups = []string{""}
		}
		for _, g := range groups {
			if g != gvk.Group {
				continue
			}
			for _, r := range sel.Resources {
				if strings.EqualFold(r, plural.Resource) || strings.EqualFold(r, singular.Resource) ||
					strings.EqualFold(r, strings.ToLower(gvk.Kind)+"s") || strings.EqualFold(r, strings.ToLower(gvk.Kind)) {
					return strings.ToLower(r)
				}
			}
		}
	}
	return plural.Resource
}

func admissionChange(doc *unstructured.Unstructured) (change.Change, error) {
	ar := &admissionv1.AdmissionReview{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(doc.Object, ar); err != nil {
		return change.Change{}, fmt.Errorf("reading the AdmissionReview: %w", err)
	}
	req := ar.Request
	if req == nil {
		return change.Change{}, fmt.Errorf("the AdmissionReview has no request")
	}
	c := change.Change{Operation: v1alpha1.Operation(req.Operation),
		Resource:  schema.GroupVersionResource{Group: req.Resource.Group, Version: req.Resource.Version, Resource: req.Resource.Resource},
		Namespace: req.Namespace, Name: req.Name, UID: "",
		User:     change.User{Username: req.UserInfo.Username, UID: req.UserInfo.UID, Groups: req.UserInfo.Groups},
		Observed: time.Now()}
	if len(req.UserInfo.Extra) > 0 {
		c.User.Extra = map[string][]string{}
		for k, v := range req.UserInfo.Extra {
			c.User.Extra[k] = v
		}
	}
	obj, err := rawObject(req.Object.Raw)
	if err != nil {
		return change.Change{}, fmt.Errorf("reading the request's object: %w", err)
	}
	old, err := rawObject(req.OldObject.Raw)
	if err != nil {
		return change.Change{}, fmt.Errorf("reading the request's oldObject: %w", err)
	}
	switch {
	case c.Operation == v1alpha1.OperationDelete:
		c.Object = old
	default:
		c.Object, c.OldObject = obj, old
	}
	if c.Object == nil {
		return change.Change{}, fmt.Errorf("the AdmissionReview's request has no object for %s", req.Operation)
	}
	if c.Name == "" {
		c.Name = c.Object.GetName()
	}
	c.UID = c.Object.GetUID()
	return c, nil
}

func rawObject(raw []byte) (*unstructured.Unstructured, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// Eval runs c through r as the operator's worker does (selection, policy,
// built-in sanitizer, WASM sanitizers, layout) into spec's base path;
// nsLabels are the labels of the object's namespace, for a
// ClusterWatchRule's namespaceSelector. A policy that cannot evaluate or a
// module that fails is an error.
func Eval(ctx context.Context, c change.Change, r *rules.Rule, spec v1alpha1.GitTargetSpec, nsLabels map[string]string) (Result, error) {
	res := Result{Rule: r.Key.String(), Resource: resourceName(c.Resource), Namespace: c.Namespace, Name: c.Name,
		Operation: string(c.Operation), User: c.User.Username}
	if c.User.IsUnknown() {
		res.User = change.UnknownUsername
	}
	if why := notSelected(c, r, nsLabels); why != "" {
		res.Reasons = []string{why}
		return res, nil
	}
	res.Selected = true
	c.Rules = []*rules.Rule{r}
	p, err := batch.PreviewChange(ctx, c, r, spec)
	if err != nil {
		return res, err
	}
	if p.Decision != nil {
		res.Reasons, res.Labels = p.Decision.Reasons, p.Decision.Labels
	}
	if p.Skipped {
		res.Reasons = append(res.Reasons, "the rule skips this kind (secrets: Skip)")
	}
	res.Record, res.Path, res.Delete, res.YAML = p.Recorded, p.Path, p.Delete, string(p.Content)
	return res, nil
}

// notSelected says why r does not take c, or "" when it does.
func notSelected(c change.Change, r *rules.Rule, nsLabels map[string]string) string {
	found := false
	for _, sel := range r.Spec.Resources {
		groups := sel.APIGroups
		if len(groups) == 0 {
			groups = []string{""}
		}
		for _, g := range groups {
			for _, res := range sel.Resources {
				if g == c.Resource.Group && strings.EqualFold(res, c.Resource.Resource) {
					found = true
				}
			}
		}
	}
	if !found {
		return fmt.Sprintf("the rule does not select resource %s", resourceName(c.Resource))
	}
	lbls := labels.Set(nil)
	if c.Object != nil {
		lbls = c.Object.GetLabels()
	}
	req := rules.Request{Resource: c.Resource.GroupResource(), Namespace: c.Namespace, Labels: lbls, Operation: c.Operation}
	labeler := func(string) (labels.Set, bool) { return nsLabels, true }
	if !r.Selects(req, labeler) {
		return fmt.Sprintf("the rule's operations, namespace or label selectors do not select this %s", c.Operation)
	}
	return ""
}

func resourceName(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource
	}
	return gvr.Resource + "." + gvr.Group
}
