package batch

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/gitops-reverser/gitops-reverser/engine/reconcile"
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

// pagedClient serves a ConfigMap list in pages with continue tokens ("1",
// "2", ...); fail answers the list request that carries the continue token
// it names.
type pagedClient struct {
	dynamic.Interface
	items []unstructured.Unstructured
	fail  map[string]error
	asked []metav1.ListOptions
}

type pagedResource struct {
	dynamic.NamespaceableResourceInterface
	c *pagedClient
}

func (c *pagedClient) Resource(schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return pagedResource{c: c}
}

func (r pagedResource) Namespace(string) dynamic.ResourceInterface { return r }

func (r pagedResource) List(_ context.Context, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	r.c.asked = append(r.c.asked, opts)
	if err := r.c.fail[opts.Continue]; err != nil {
		return nil, err
	}
	from := 0
	if opts.Continue != "" {
		from, _ = strconv.Atoi(opts.Continue)
	}
	to := min(from+int(opts.Limit), len(r.c.items))
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMapList"}}
	list.Items = append(list.Items, r.c.items[from:to]...)
	if to < len(r.c.items) {
		list.SetContinue(strconv.Itoa(to))
	}
	return list, nil
}

// TestDynamicLister_ListPages_cases: the pages follow the continue tokens
// with the page size as limit; a continue token that expired fails with
// reconcile.ErrListExpired (the plan lists again), any other error does
// not.
func TestDynamicLister_ListPages_cases(t *testing.T) {
	var items []unstructured.Unstructured
	for i := range 5 {
		cm := unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "cm-" + strconv.Itoa(i), "namespace": "shop"}}}
		cm.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
		items = append(items, cm)
	}
	expired := apierrors.NewResourceExpired("The provided continue parameter is too old")
	tests := []struct {
		name        string
		fail        map[string]error
		wantPages   []int
		wantErr     bool
		wantExpired bool
	}{
		{name: "every page", wantPages: []int{2, 2, 1}},
		{name: "an expired continue token", fail: map[string]error{"4": expired}, wantPages: []int{2, 2}, wantErr: true, wantExpired: true},
		{name: "a 410 on the first page is no expired continue", fail: map[string]error{"": expired}, wantErr: true},
		{name: "forbidden on a later page", fail: map[string]error{"2": apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", nil)},
			wantPages: []int{2}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &pagedClient{items: items, fail: tt.fail}
			var pages []int
			err := DynamicLister{Client: c, PageSize: 2}.ListPages(context.Background(), configmaps, "shop", func(p reconcile.Listing) error {
				pages = append(pages, len(p.Items))
				if p.Kind != "ConfigMap" {
					t.Errorf("page kind %q, want ConfigMap", p.Kind)
				}
				for _, o := range p.Items {
					if len(o.GetManagedFields()) != 0 {
						t.Errorf("%s keeps managedFields", o.GetName())
					}
				}
				return nil
			})
			if (err != nil) != tt.wantErr || errors.Is(err, reconcile.ErrListExpired) != tt.wantExpired {
				t.Fatalf("ListPages error = %v, want error %v, expired %v", err, tt.wantErr, tt.wantExpired)
			}
			if !reflect.DeepEqual(pages, tt.wantPages) {
				t.Fatalf("pages of %v objects, want %v", pages, tt.wantPages)
			}
			for _, o := range c.asked {
				if o.Limit != 2 {
					t.Fatalf("a list asked with limit %d, want 2", o.Limit)
				}
			}
		})
	}
}
