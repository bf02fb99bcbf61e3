package transform

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// loadObject reads a testdata fixture, an object as the API server returns
// it, the way a dynamic client decodes it.
func loadObject(t testing.TB, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
	return obj
}

// fromJSON decodes an inline object.
func fromJSON(t testing.TB, s string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatalf("decode object: %v", err)
	}
	return obj
}

// field returns the value at fields, descending through objects only.
func field(obj *unstructured.Unstructured, fields ...string) (interface{}, bool) {
	v, ok, err := unstructured.NestedFieldNoCopy(obj.Object, fields...)
	if err != nil {
		return nil, false
	}
	return v, ok
}

func mustSanitize(t testing.TB, obj *unstructured.Unstructured, opts Options) *unstructured.Unstructured {
	t.Helper()
	out, err := Sanitize(obj, opts)
	if err != nil {
		t.Fatalf("Sanitize: %v", err)
	}
	return out
}

func mustMarshal(t testing.TB, obj *unstructured.Unstructured) []byte {
	t.Helper()
	out, err := Marshal(obj)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return out
}
