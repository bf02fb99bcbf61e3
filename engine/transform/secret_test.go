package transform

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// secretValuesInFixture are the values of testdata/secret.json in every
// form they take there (base64 in data and last-applied, plain in
// last-applied's stringData and in an annotation).
var secretValuesInFixture = []string{
	"aHVudGVyMi1zM2NyM3Q=", "hunter2-s3cr3t",
	"YXBwLXVzZXItNDI=", "app-user-42",
}

func TestSanitize_secret_redactsEveryValue(t *testing.T) {
	tests := []struct {
		name   string
		obj    string
		values []string
		keys   map[string][]string // field -> keys kept
	}{
		{
			name:   "fixture with values in last-applied and another annotation",
			obj:    "secret.json",
			values: secretValuesInFixture,
			keys:   map[string][]string{"data": {"password", "username"}},
		},
		{
			name: "stringData as in an admission request",
			obj: `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"api","namespace":"n",
				"labels":{"token-hint":"tok-9f8e7d"},
				"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"token\":\"tok-9f8e7d6c\"}}"}},
				"stringData":{"token":"tok-9f8e7d6c"},"data":{"ca.crt":"LS0tLS1CRUdJTi1DRVJU"},"type":"Opaque"}`,
			values: []string{"tok-9f8e7d6c", "LS0tLS1CRUdJTi1DRVJU", "-----BEGIN-CERT",
				base64.StdEncoding.EncodeToString([]byte("tok-9f8e7d6c"))},
			keys: map[string][]string{"data": {"ca.crt"}, "stringData": {"token"}},
		},
		{
			name: "unknown top-level field and non-string value",
			obj: `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","namespace":"n"},
				"data":{"n":12345678},"futureField":{"copy":"c2VjcmV0LXZhbHVl"}}`,
			values: []string{"12345678", "c2VjcmV0LXZhbHVl"},
			keys:   map[string][]string{"data": {"n"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := loadOrDecode(t, tt.obj)
			out := mustSanitize(t, in, Options{Secrets: Redact})
			yaml := string(mustMarshal(t, out))
			for _, v := range tt.values {
				if strings.Contains(yaml, v) {
					t.Errorf("value %q survived in:\n%s", v, yaml)
				}
			}
			for f, keys := range tt.keys {
				m, ok := field(out, f)
				if !ok {
					t.Fatalf("%s missing", f)
				}
				got := m.(map[string]interface{})
				if len(got) != len(keys) {
					t.Errorf("%s has %d keys, want %v", f, len(got), keys)
				}
				want := RedactedData
				if f == "stringData" {
					want = RedactedValue
				}
				for _, k := range keys {
					if got[k] != want {
						t.Errorf("%s.%s = %v, want %q", f, k, got[k], want)
					}
				}
			}
		})
	}
}

func loadOrDecode(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	if strings.HasSuffix(s, ".json") {
		return loadObject(t, s)
	}
	return fromJSON(t, s)
}

func TestSanitize_secret_keepsHarmlessMetadata(t *testing.T) {
	out := mustSanitize(t, loadObject(t, "secret.json"), Options{})
	want := map[string]interface{}{
		"metadata|labels":      map[string]interface{}{"app": "db"},
		"metadata|annotations": map[string]interface{}{"owner.example.com/team": "payments"},
		"type":                 "Opaque",
	}
	for p, w := range want {
		v, ok := field(out, strings.Split(p, "|")...)
		if !ok || !reflect.DeepEqual(v, w) {
			t.Errorf("%s = %#v, want %#v", p, v, w)
		}
	}
	dec, err := base64.StdEncoding.DecodeString(RedactedData)
	if err != nil || string(dec) != RedactedValue {
		t.Errorf("RedactedData decodes to %q (%v), want %q", dec, err, RedactedValue)
	}
}

func TestSanitize_secret_skip(t *testing.T) {
	tests := []struct {
		name     string
		obj      string
		wantSkip bool
	}{
		{name: "secret is skipped", obj: "secret.json", wantSkip: true},
		{name: "configmap is not", obj: "configmap.json"},
		{
			name: "a Secret kind in another group is not",
			obj:  `{"apiVersion":"example.com/v1","kind":"Secret","metadata":{"name":"s"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Sanitize(loadOrDecode(t, tt.obj), Options{Secrets: Skip})
			if tt.wantSkip {
				if !errors.Is(err, ErrSkipped) || out != nil {
					t.Fatalf("got (%v, %v), want (nil, ErrSkipped)", out, err)
				}
				if strings.Contains(err.Error(), "aHVudGVy") {
					t.Errorf("error leaks a value: %v", err)
				}
				return
			}
			if err != nil || out == nil {
				t.Fatalf("got (%v, %v), want an object", out, err)
			}
		})
	}
}
