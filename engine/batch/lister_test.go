package batch

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func TestDynamicLister_List_dropsManagedFields(t *testing.T) {
	tests := []struct {
		name   string
		fields []metav1.ManagedFieldsEntry
	}{
		{name: "with managedFields", fields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}},
		{name: "without managedFields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cm := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": "cm", "namespace": "shop"},
				"data":     map[string]any{"v": "1"},
			}}
			cm.SetManagedFields(tt.fields)
			client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{configmaps: "ConfigMapList"}, cm)
			got, err := DynamicLister{Client: client}.List(context.Background(), configmaps, "shop")
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(got.Items) != 1 {
				t.Fatalf("listed %d objects, want 1", len(got.Items))
			}
			if _, found, _ := unstructured.NestedFieldNoCopy(got.Items[0].Object, "metadata", "managedFields"); found {
				t.Errorf("the listed object keeps managedFields: %v", got.Items[0].Object["metadata"])
			}
			if v, _, _ := unstructured.NestedString(got.Items[0].Object, "data", "v"); v != "1" {
				t.Errorf("data.v = %q, want 1 (the rest of the object is kept)", v)
			}
		})
	}
}
