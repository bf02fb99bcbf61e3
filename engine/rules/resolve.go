package rules

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// ResolveError says why a rule's resources or selectors cannot be used. Its
// Reason is one of the v1alpha1 rule condition reasons.
type ResolveError struct {
	// Reason is a v1alpha1 condition reason, e.g. ResourceNotFound.
	Reason string
	// Message names the offending resource or selector.
	Message string
	// Err is the underlying error, if any.
	Err error
}

// Error implements error.
func (e *ResolveError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the underlying error.
func (e *ResolveError) Unwrap() error { return e.Err }

// ReasonUnsupportedScope: a WatchRule names a cluster-scoped resource.
const ReasonUnsupportedScope = "UnsupportedScope"

// ResolveResources maps the rule's selectors to served resources through
// the API server's discovery. A namespaced WatchRule (clusterRule false) may
// only select namespaced resources.
func ResolveResources(mapper meta.RESTMapper, selectors []v1alpha1.ResourceSelector, clusterRule bool) ([]Resource, error) {
	var out []Resource
	seen := map[schema.GroupVersionResource]bool{}
	for _, sel := range selectors {
		groups := sel.APIGroups
		if len(groups) == 0 {
			groups = []string{""}
		}
		versions := sel.APIVersions
		if len(versions) == 0 {
			versions = []string{""}
		}
		for _, g := range groups {
			for _, v := range versions {
				for _, res := range sel.Resources {
					r, err := resolveOne(mapper, schema.GroupVersionResource{Group: g, Version: v, Resource: strings.ToLower(res)})
					if err != nil {
						return nil, err
					}
					if !clusterRule && !r.Namespaced {
						return nil, &ResolveError{Reason: ReasonUnsupportedScope,
							Message: fmt.Sprintf("resource %q is cluster-scoped; a WatchRule selects only within its namespace, use a ClusterWatchRule", describe(r.GVR))}
					}
					if !seen[r.GVR] {
						seen[r.GVR] = true
						out = append(out, r)
					}
				}
			}
		}
	}
	return out, nil
}

func resolveOne(mapper meta.RESTMapper, in schema.GroupVersionResource) (Resource, error) {
	if in.Resource == "" || in.Resource == "*" || in.Group == "*" || in.Version == "*" || strings.Contains(in.Resource, "/") {
		return Resource{}, &ResolveError{Reason: v1alpha1.ReasonResourceNotFound,
			Message: fmt.Sprintf("resource %q: wildcards and subresources are not supported; name each plural resource", describe(in))}
	}
	gvr, err := mapper.ResourceFor(in)
	if err != nil {
		return Resource{}, notFound(in, err)
	}
	gvk, err := mapper.KindFor(gvr)
	if err != nil {
		return Resource{}, notFound(in, err)
	}
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return Resource{}, notFound(in, err)
	}
	return Resource{GVR: gvr, Namespaced: mapping.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

func notFound(in schema.GroupVersionResource, err error) error {
	if meta.IsNoMatchError(err) || errors.Is(err, &meta.NoResourceMatchError{}) {
		return &ResolveError{Reason: v1alpha1.ReasonResourceNotFound,
			Message: fmt.Sprintf("resource %q is not served by the API server", describe(in))}
	}
	return &ResolveError{Reason: v1alpha1.ReasonResourceNotFound,
		Message: fmt.Sprintf("resource %q could not be resolved", describe(in)), Err: err}
}

// describe renders a GVR as resource.version.group, the way kubectl names
// resources, leaving out empty parts.
func describe(gvr schema.GroupVersionResource) string {
	s := gvr.Resource
	if gvr.Version != "" {
		s += "." + gvr.Version
	}
	if gvr.Group != "" {
		s += "." + gvr.Group
	}
	return s
}

// Selector converts a label selector; nil stays nil.
func Selector(field string, sel *metav1.LabelSelector) (labels.Selector, error) {
	if sel == nil {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, &ResolveError{Reason: v1alpha1.ReasonInvalidSelector, Message: "invalid " + field, Err: err}
	}
	return s, nil
}

// Operations converts the rule's operations to a set; empty means all.
func Operations(ops []v1alpha1.Operation) map[v1alpha1.Operation]bool {
	if len(ops) == 0 {
		ops = []v1alpha1.Operation{v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete}
	}
	out := make(map[v1alpha1.Operation]bool, len(ops))
	for _, op := range ops {
		out[op] = true
	}
	return out
}
