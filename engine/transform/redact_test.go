package transform

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestRedactSecret_cases(t *testing.T) {
	tests := []struct {
		name     string
		obj      string
		values   []string            // must not survive in any form
		keys     map[string][]string // field -> keys kept
		metadata map[string]string   // label/annotation -> value kept or redacted
	}{
		{
			name:   "fixture with values in last-applied and another annotation",
			obj:    "secret.json",
			values: secretValuesInFixture,
			keys:   map[string][]string{"data": {"password", "username"}},
			metadata: map[string]string{
				"annotations|" + lastAppliedAnnotation: RedactedValue,
				"labels|app":                           "db",
			},
		},
		{
			name: "stringData as in an admission request",
			obj: `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"api","namespace":"n",
				"labels":{"token-hint":"tok-9f8e7d6c"},
				"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"token\":\"tok-9f8e7d6c\"}}"}},
				"stringData":{"token":"tok-9f8e7d6c"},"data":{"ca.crt":"LS0tLS1CRUdJTi1DRVJU"},"type":"Opaque"}`,
			values: []string{"tok-9f8e7d6c", "LS0tLS1CRUdJTi1DRVJU", "-----BEGIN-CERT",
				base64.StdEncoding.EncodeToString([]byte("tok-9f8e7d6c"))},
			keys:     map[string][]string{"data": {"ca.crt"}, "stringData": {"token"}},
			metadata: map[string]string{"labels|token-hint": RedactedValue},
		},
		{
			name: "unknown top-level field, non-string value, data not an object",
			obj: `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","namespace":"n"},
				"stringData":"c2VjcmV0LXZhbHVl","data":{"n":12345678},"futureField":{"copy":"c2VjcmV0LXZhbHVl"}}`,
			values: []string{"12345678", "c2VjcmV0LXZhbHVl"},
			keys:   map[string][]string{"data": {"n"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := loadOrDecode(t, tt.obj).Object
			before := runtime.DeepCopyJSON(in)
			out := RedactSecret(in)
			if !reflect.DeepEqual(in, before) {
				t.Fatal("RedactSecret modified its input")
			}
			raw, err := json.Marshal(out)
			if err != nil {
				t.Fatalf("encoding: %v", err)
			}
			for _, v := range tt.values {
				if strings.Contains(string(raw), v) {
					t.Errorf("value %q survived in %s", v, raw)
				}
			}
			for field, keys := range tt.keys {
				m, _ := out[field].(map[string]any)
				for _, k := range keys {
					if _, ok := m[k]; !ok {
						t.Errorf("%s lost key %q: %s", field, k, raw)
					}
				}
			}
			for p, want := range tt.metadata {
				section, key, _ := strings.Cut(p, "|")
				got := nestedMap(out, "metadata", section)[key]
				if got != want {
					t.Errorf("metadata.%s[%q] = %v, want %q", section, key, got, want)
				}
			}
			if _, ok := out["futureField"]; ok {
				t.Error("unknown top-level field kept")
			}
		})
	}
}

func TestRedactSecret_otherKinds_unchanged(t *testing.T) {
	tests := []string{
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"password":"plain"}}`,
		`{"apiVersion":"example.com/v1","kind":"Secret","metadata":{"name":"c"},"data":{"password":"plain"}}`,
		`{"kind":"Secret","data":{"password":"plain"}}`,
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			in := fromJSON(t, s).Object
			out := RedactSecret(in)
			if !reflect.DeepEqual(in, out) {
				t.Errorf("RedactSecret changed a %v: %v", in["kind"], out)
			}
		})
	}
}
