package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDiscoveryMapper_Reset_asksDiscoveryAgain: a resource that a reset
// mapper did not know resolves once discovery serves it.
func TestDiscoveryMapper_Reset_asksDiscoveryAgain(t *testing.T) {
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	served := false
	builds := 0
	d := &DiscoveryMapper{build: func() (meta.RESTMapper, error) {
		builds++
		m := meta.NewDefaultRESTMapper(nil)
		if served {
			m.Add(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, meta.RESTScopeNamespace)
		}
		return m, nil
	}}
	if _, err := d.ResourceFor(widgets); !meta.IsNoMatchError(err) {
		t.Fatalf("before the CRD: err = %v, want a no-match error", err)
	}
	served = true
	if _, err := d.ResourceFor(widgets); !meta.IsNoMatchError(err) {
		t.Fatalf("without a reset the mapper keeps what it read: err = %v", err)
	}
	d.Reset()
	if got, err := d.ResourceFor(widgets); err != nil || got != widgets {
		t.Fatalf("after a reset: %v, %v; want %v", got, err, widgets)
	}
	if builds != 2 {
		t.Errorf("discovery read %d times, want 2 (once, and once after the reset)", builds)
	}
}
