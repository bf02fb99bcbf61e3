package admission

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// TestHandler_selected_newNamespace: a write in a namespace the operator's
// cache has not heard of yet (one apply creates the Namespace and objects
// in it) is claimed when a rule with a namespace selector would select it
// in some namespace; the watch decides once the namespace is known.
func TestHandler_selected_newNamespace(t *testing.T) {
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secrets := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	nsSel, err := labels.Parse("team=x")
	if err != nil {
		t.Fatal(err)
	}
	objSel, err := labels.Parse("app=web")
	if err != nil {
		t.Fatal(err)
	}
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key:             rules.Key{Kind: rules.KindClusterWatchRule, Name: "teams"},
		Resources:       []rules.Resource{{GVR: configMaps, Namespaced: true}},
		NamespaceLabels: nsSel,
		Labels:          objSel,
	})
	ix.Upsert(&rules.Rule{
		Key:       rules.Key{Kind: rules.KindWatchRule, Namespace: "elsewhere", Name: "secrets"},
		Namespace: "elsewhere",
		Resources: []rules.Resource{{GVR: secrets, Namespaced: true}},
	})
	for _, tc := range []struct {
		name     string
		resource schema.GroupVersionResource
		objApp   string
		// nsLabels are the namespace's labels in the cache; nil when the
		// cache has not heard of it.
		nsLabels labels.Set
		want     bool
	}{
		{name: "namespace not in the cache yet", resource: configMaps, objApp: "web", want: true},
		{name: "namespace selected", resource: configMaps, objApp: "web", nsLabels: labels.Set{"team": "x"}, want: true},
		{name: "namespace not selected", resource: configMaps, objApp: "web", nsLabels: labels.Set{"team": "y"}},
		{name: "namespace unknown, object labels not selected", resource: configMaps, objApp: "db"},
		{name: "namespace unknown, no namespace-selector rule for the resource", resource: secrets, objApp: "web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHandler(Options{Index: ix, Recorder: &recorder{}, NamespaceLabels: func(ns string) (labels.Set, bool) {
				return tc.nsLabels, ns == "team" && tc.nsLabels != nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			obj := &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]interface{}{"name": "settings", "namespace": "team", "labels": map[string]interface{}{"app": tc.objApp}},
			}}
			req := &request{Namespace: "team", Name: "settings", Operation: "CREATE"}
			if got := h.selected(req, tc.resource, v1alpha1.OperationCreate, obj); got != tc.want {
				t.Fatalf("selected = %v, want %v", got, tc.want)
			}
		})
	}
}
