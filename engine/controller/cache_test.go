package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// TestCacheOptions_transform_cases: the manager's cache drops managedFields
// of what it caches and keeps the rest of the metadata.
func TestCacheOptions_transform_cases(t *testing.T) {
	fields := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	partial := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "policy", Namespace: "shop",
		Labels: map[string]string{"role": "policy"}, ManagedFields: fields}}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "policy", "namespace": "shop", "labels": map[string]any{"role": "policy"}}}}
	u.SetManagedFields(fields)
	tests := []struct {
		name string
		obj  metav1.Object
	}{
		{name: "metadata only", obj: partial},
		{name: "unstructured", obj: u},
	}
	transform := CacheOptions().DefaultTransform
	if transform == nil {
		t.Fatal("no DefaultTransform")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := transform(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.(metav1.Object)
			if !ok {
				t.Fatalf("transform returned %T", out)
			}
			if len(got.GetManagedFields()) != 0 {
				t.Errorf("managedFields kept: %v", got.GetManagedFields())
			}
			if got.GetName() != "policy" || got.GetNamespace() != "shop" || got.GetLabels()["role"] != "policy" {
				t.Errorf("metadata changed: %s/%s %v", got.GetNamespace(), got.GetName(), got.GetLabels())
			}
		})
	}
}

// TestCacheOptions_policyConfigMapsOnly: the cache holds the ConfigMaps
// labelled as policies and no other.
func TestCacheOptions_policyConfigMapsOnly(t *testing.T) {
	var sel labels.Selector
	for obj, by := range CacheOptions().ByObject {
		if _, ok := obj.(*corev1.ConfigMap); ok {
			sel = by.Label
		}
	}
	if sel == nil {
		t.Fatal("no label selector for ConfigMaps")
	}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{v1alpha1.PolicyLabel: "true"}, true},
		{map[string]string{v1alpha1.PolicyLabel: "true", "team": "a"}, true},
		{map[string]string{v1alpha1.PolicyLabel: "false"}, false},
		{map[string]string{"team": "a"}, false},
		{nil, false},
	} {
		if got := sel.Matches(labels.Set(tc.labels)); got != tc.want {
			t.Errorf("selector %q matches %v = %v, want %v", sel, tc.labels, got, tc.want)
		}
	}
}
