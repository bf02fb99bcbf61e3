package rules

import (
	"errors"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

func testMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	return m
}

func TestResolveResources_cases(t *testing.T) {
	tests := []struct {
		name        string
		selectors   []v1alpha1.ResourceSelector
		cluster     bool
		wantRes     []string
		wantMissing []string
		wantReason  string
	}{
		{
			name:    "all served",
			cluster: true,
			selectors: []v1alpha1.ResourceSelector{
				{Resources: []string{"configmaps", "namespaces"}},
			},
			wantRes: []string{"/v1, Resource=configmaps", "/v1, Resource=namespaces"},
		},
		{
			name:    "one missing: the others still resolve",
			cluster: true,
			selectors: []v1alpha1.ResourceSelector{
				{APIGroups: []string{"example.com"}, Resources: []string{"Widgets"}},
				{Resources: []string{"configmaps"}},
			},
			wantRes:     []string{"/v1, Resource=configmaps"},
			wantMissing: []string{"widgets.example.com"},
		},
		{
			name:        "all missing",
			cluster:     true,
			selectors:   []v1alpha1.ResourceSelector{{APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}}},
			wantMissing: []string{"widgets.v1.example.com"},
		},
		{
			name:       "a wildcard is the rule's error, not a missing resource",
			cluster:    true,
			selectors:  []v1alpha1.ResourceSelector{{Resources: []string{"*"}}},
			wantReason: v1alpha1.ReasonResourceNotFound,
		},
		{
			name:       "a cluster-scoped resource in a WatchRule",
			selectors:  []v1alpha1.ResourceSelector{{Resources: []string{"configmaps", "namespaces"}}},
			wantReason: ReasonUnsupportedScope,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveResources(testMapper(), tt.selectors, tt.cluster)
			if tt.wantReason != "" {
				var re *ResolveError
				if !errors.As(err, &re) || re.Reason != tt.wantReason {
					t.Fatalf("err = %v, want reason %s", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var res []string
			for _, r := range got.Resources {
				res = append(res, r.GVR.String())
			}
			if fmt.Sprint(res) != fmt.Sprint(tt.wantRes) {
				t.Errorf("resources %v, want %v", res, tt.wantRes)
			}
			if fmt.Sprint(got.MissingNames()) != fmt.Sprint(tt.wantMissing) && !(len(got.Missing) == 0 && len(tt.wantMissing) == 0) {
				t.Errorf("missing %v, want %v", got.MissingNames(), tt.wantMissing)
			}
			for _, m := range got.Missing {
				if m.Resource.Group != "example.com" || m.Resource.Resource != "widgets" {
					t.Errorf("missing resource %v, want widgets.example.com", m.Resource)
				}
			}
		})
	}
}
