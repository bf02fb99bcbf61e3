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
	// missing: the resource is not served (yet); the rest of the rule
	// may still resolve.
	missing bool
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

// Missing is a resource a rule names that the API server does not serve
// (yet): a CRD not installed or not established, an aggregated API that is
// down.
type Missing struct {
	// Resource is the group and plural resource as the rule names it.
	Resource schema.GroupResource
	// Name is how conditions show it (resource.version.group).
	Name string
	// Err says why it did not resolve.
	Err error
	// Transient is true when discovery failed (rather than answering
	// that the resource is not served): worth asking again soon.
	Transient bool
}

// Resolution is what resolved of a rule's resources, and what did not.
type Resolution struct {
	// Resources resolved, in the rule's order, without duplicates.
	Resources []Resource
	// Missing are the resources not served, in the rule's order.
	Missing []Missing
}

// Transient reports whether discovery failed for a missing resource.
func (r Resolution) Transient() bool {
	for _, m := range r.Missing {
		if m.Transient {
			return true
		}
	}
	return false
}

// MissingNames returns the names of the missing resources.
func (r Resolution) MissingNames() []string {
	out := make([]string, 0, len(r.Missing))
	for _, m := range r.Missing {
		out = append(out, m.Name)
	}
	return out
}

// ResolveResources maps the rule's selectors to served resources through
// the API server's discovery. A resource that is not served is Missing, and
// the others still resolve: a rule records what it can. An error means the
// rule itself is wrong (a wildcard, a subresource, or for a namespaced
// WatchRule, clusterRule false, a cluster-scoped resource) and the user
// must change it.
func ResolveResources(mapper meta.RESTMapper, selectors []v1alpha1.ResourceSelector, clusterRule bool) (Resolution, error) {
	var out Resolution
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
					in := schema.GroupVersionResource{Group: g, Version: v, Resource: strings.ToLower(res)}
					r, err := resolveOne(mapper, in)
					var re *ResolveError
					if errors.As(err, &re) && re.missing {
						out.Missing = append(out.Missing, Missing{Resource: in.GroupResource(), Name: describe(in), Err: err, Transient: re.Err != nil})
						continue
					}
					if err != nil {
						return Resolution{}, err
					}
					if !clusterRule && !r.Namespaced {
						return Resolution{}, &ResolveError{Reason: ReasonUnsupportedScope,
							Message: fmt.Sprintf("resource %q is cluster-scoped; a WatchRule selects only within its namespace, use a ClusterWatchRule", describe(r.GVR))}
					}
					if !seen[r.GVR] {
						seen[r.GVR] = true
						out.Resources = append(out.Resources, r)
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

// notFound: a resource that discovery does not know (or could not be asked
// about) is missing; the rule is resolved again when discovery changes.
func notFound(in schema.GroupVersionResource, err error) error {
	if meta.IsNoMatchError(err) || errors.Is(err, &meta.NoResourceMatchError{}) {
		return &ResolveError{Reason: v1alpha1.ReasonResourceNotFound, missing: true,
			Message: fmt.Sprintf("resource %q is not served by the API server", describe(in))}
	}
	return &ResolveError{Reason: v1alpha1.ReasonResourceNotFound, missing: true,
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
