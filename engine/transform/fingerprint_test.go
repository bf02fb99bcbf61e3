package transform

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// admissionDeployment is the object an UPDATE admission request carries
// for deployment.json: the user's change before the API server stored it
// (old resourceVersion, other managedFields, no new status).
func admissionDeployment(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	obj := loadObject(t, "deployment.json")
	obj.SetResourceVersion("184400")
	obj.SetGeneration(2)
	obj.SetManagedFields(nil)
	unstructured.RemoveNestedField(obj.Object, "status")
	return obj
}

func TestFingerprint_equivalence_cases(t *testing.T) {
	tests := []struct {
		name string
		a, b func(t *testing.T) *unstructured.Unstructured
		want bool
	}{
		{
			name: "admission object and persisted object",
			a:    admissionDeployment,
			b:    func(t *testing.T) *unstructured.Unstructured { return loadObject(t, "deployment.json") },
			want: true,
		},
		{
			name: "a different spec",
			a: func(t *testing.T) *unstructured.Unstructured {
				obj := admissionDeployment(t)
				if err := unstructured.SetNestedField(obj.Object, int64(5), "spec", "replicas"); err != nil {
					t.Fatal(err)
				}
				return obj
			},
			b:    func(t *testing.T) *unstructured.Unstructured { return loadObject(t, "deployment.json") },
			want: false,
		},
		{
			name: "a different label",
			a: func(t *testing.T) *unstructured.Unstructured {
				obj := admissionDeployment(t)
				obj.SetLabels(map[string]string{"app": "web"})
				return obj
			},
			b:    func(t *testing.T) *unstructured.Unstructured { return loadObject(t, "deployment.json") },
			want: false,
		},
		{
			name: "service before and after IP allocation",
			a: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
					"spec":{"ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app":"web"},
					"internalTrafficPolicy":"Cluster","sessionAffinity":"None","type":"ClusterIP"}}`)
			},
			b:    func(t *testing.T) *unstructured.Unstructured { return loadObject(t, "service.json") },
			want: true,
		},
		{
			name: "secrets with the same keys and other values",
			a:    func(t *testing.T) *unstructured.Unstructured { return loadObject(t, "secret.json") },
			b: func(t *testing.T) *unstructured.Unstructured {
				obj := loadObject(t, "secret.json")
				if err := unstructured.SetNestedField(obj.Object, "b3RoZXI=", "data", "password"); err != nil {
					t.Fatal(err)
				}
				return obj
			},
			want: false,
		},
		{
			name: "secret written with stringData and as stored",
			a: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n"},
					"data":{"a":"eA=="},"stringData":{"b":"hello"},"type":"Opaque"}`)
			},
			b: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n","uid":"u","resourceVersion":"7"},
					"data":{"a":"eA==","b":"aGVsbG8="},"type":"Opaque"}`)
			},
			want: true,
		},
		{
			name: "a number and the same digits as a string",
			a: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":1}}`)
			},
			b: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":"1"}}`)
			},
			want: false,
		},
		{
			name: "keys that would collide if concatenated",
			a: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"a":"b,c"}}`)
			},
			b: func(t *testing.T) *unstructured.Unstructured {
				return fromJSON(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"a":"b","c":""}}`)
			},
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a(t), tt.b(t)
			fa, err := Fingerprint(a)
			if err != nil {
				t.Fatalf("Fingerprint(a): %v", err)
			}
			fb, err := Fingerprint(b)
			if err != nil {
				t.Fatalf("Fingerprint(b): %v", err)
			}
			if (fa == fb) != tt.want {
				t.Errorf("fingerprints equal = %v, want %v", fa == fb, tt.want)
			}
			eq, err := Equivalent(a, b)
			if err != nil || eq != tt.want {
				t.Errorf("Equivalent = %v, %v; want %v", eq, err, tt.want)
			}
		})
	}
}

func TestFingerprint_stable_andOpaque(t *testing.T) {
	first, err := Fingerprint(loadObject(t, "secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 64 || strings.Trim(first, "0123456789abcdef") != "" {
		t.Errorf("want 64 hex digits, got %q", first)
	}
	for i := 0; i < 10; i++ {
		again, err := Fingerprint(loadObject(t, "secret.json"))
		if err != nil || again != first {
			t.Fatalf("run %d: %q, %v; want %q", i, again, err, first)
		}
	}
	// Fingerprint must not change the input, in particular not redact it
	// and not fold stringData away.
	in := fromJSON(t, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"k":"v"}}`)
	if _, err := Fingerprint(in); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(in.Object, "stringData", "k"); v != "v" {
		t.Errorf("input changed: stringData.k = %q", v)
	}
}

func TestFingerprint_errors_badInput(t *testing.T) {
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
	}{
		{name: "nil", obj: nil},
		{name: "no kind", obj: &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fp, err := Fingerprint(tt.obj); err == nil {
				t.Errorf("want error, got %q", fp)
			}
			good := loadObject(t, "configmap.json")
			if eq, err := Equivalent(good, tt.obj); err == nil || eq {
				t.Errorf("Equivalent = %v, %v; want false and an error", eq, err)
			}
		})
	}
}
