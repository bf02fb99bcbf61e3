package plugin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// secretValue is a distinctive Secret value; it must reach no module.
const secretValue = "hunter2-Zq9-leak"

var secretValueForms = []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue))}

// secretJSON is a Secret as the API server returns it, values in data, in
// stringData and in kubectl's last-applied annotation.
var secretJSON = `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"shop",
"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"password\":\"` + secretValue + `\"}}"}},
"data":{"password":"` + secretValueForms[1] + `"},"stringData":{"plain":"` + secretValue + `"},"type":"Opaque"}`

func TestModule_call_secretRedacted(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, goPlugin(t, pkgHostile))
	secretCC := CallContext{Operation: "DELETE", User: "alice",
		Resource: Resource{Version: "v1", Resource: "secrets", Kind: "Secret", Namespace: "shop", Name: "db"}}
	ctx := context.Background()
	tests := []struct {
		name   string
		object string
		cc     CallContext
		// call returns what the module saw: its output, or its error text.
		call func(object []byte, cc CallContext) string
		want []string // must be in what the module saw
	}{
		{
			name: "sanitize echoes its input", object: secretJSON, cc: secretCC,
			call: func(object []byte, cc CallContext) string {
				out, err := m.Sanitize(ctx, object, nil, cc)
				if err != nil {
					t.Fatalf("Sanitize: %v", err)
				}
				return string(out)
			},
			want: []string{`"password":"UkVEQUNURUQ="`, `"plain":"REDACTED"`, `"kubectl.kubernetes.io/last-applied-configuration":"REDACTED"`},
		},
		{
			name: "layout of a DELETE reports its input as an error", object: secretJSON, cc: secretCC,
			call: func(object []byte, cc CallContext) string {
				_, err := m.Layout(ctx, object, []byte(`{"mode":"echo-error"}`), cc)
				if ReasonOf(err) != ReasonPluginFailed {
					t.Fatalf("Layout error = %v, want a PluginFailed", err)
				}
				return err.Error()
			},
			// The error text has the object's values removed (see
			// reduceGuestMessage); its keys show what the module got.
			want: []string{`"password":"***"`, `last-applied-configuration":"***"`},
		},
		{
			name:   "object without kind, context names a Secret",
			object: `{"metadata":{"name":"db"},"data":{"password":"` + secretValueForms[1] + `"}}`, cc: secretCC,
			call: func(object []byte, cc CallContext) string {
				out, err := m.Sanitize(ctx, object, nil, cc)
				if err != nil {
					t.Fatalf("Sanitize: %v", err)
				}
				return string(out)
			},
			want: []string{`"password":"UkVEQUNURUQ="`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := tt.call([]byte(tt.object), tt.cc)
			for _, v := range secretValueForms {
				if strings.Contains(seen, v) {
					t.Errorf("the module saw %q: %s", v, seen)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(seen, w) {
					t.Errorf("the module saw no %s: %s", w, seen)
				}
			}
		})
	}
}

func TestRedactSecret_otherKinds_untouched(t *testing.T) {
	tests := []struct {
		name   string
		object string
		cc     CallContext
	}{
		{"ConfigMap", `{"apiVersion":"v1","kind":"ConfigMap","data":{"password":"` + secretValue + `"}}`, testCallContext},
		{"Secret of another group", `{"apiVersion":"example.com/v1","kind":"Secret","data":{"password":"x"}}`,
			CallContext{Resource: Resource{Group: "example.com", Resource: "secrets", Kind: "Secret"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := redactSecret([]byte(tt.object), tt.cc)
			if err != nil {
				t.Fatalf("redactSecret: %v", err)
			}
			if string(out) != tt.object {
				t.Errorf("redactSecret changed %s to %s", tt.object, out)
			}
		})
	}
}

// BenchmarkRedactSecret measures what every call pays to find out whether
// its object is a Secret, and what a Secret pays to be redacted.
func BenchmarkRedactSecret(b *testing.B) {
	secretCC := CallContext{Resource: Resource{Version: "v1", Resource: "secrets", Kind: "Secret"}}
	for _, bc := range []struct {
		name   string
		object []byte
		cc     CallContext
	}{
		{"deployment", deployment(b), testCallContext},
		{"secret", []byte(secretJSON), secretCC},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.object)))
			for b.Loop() {
				if _, err := redactSecret(bc.object, bc.cc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// What topLevelKind replaces: encoding/json into a two-field struct.
	b.Run("deployment/encoding-json-head", func(b *testing.B) {
		object := deployment(b)
		b.SetBytes(int64(len(object)))
		for b.Loop() {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := json.Unmarshal(object, &head); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestTopLevelKind_cases(t *testing.T) {
	tests := []struct {
		name, in         string
		apiVersion, kind string
		known            bool
	}{
		{"secret", `{"apiVersion":"v1","kind":"Secret","data":{"a":"b"}}`, "v1", "Secret", true},
		{"spaces and order", " {\n \"data\" : {\"kind\":\"x\"} ,\t\"kind\" : \"Secret\", \"apiVersion\":\"v1\" } ", "v1", "Secret", true},
		{"kind only nested", `{"apiVersion":"v1","metadata":{"kind":"Secret"},"items":[{"kind":"Secret"}]}`, "v1", "", true},
		{"strings with braces and quotes", `{"a":"}]\"{","kind":"ConfigMap","b":[1,-2.5e3,true,null,"]"]}`, "", "ConfigMap", true},
		{"last of duplicate keys wins", `{"kind":"Secret","kind":"ConfigMap","apiVersion":"v1"}`, "v1", "ConfigMap", true},
		{"kind not a string", `{"apiVersion":"v1","kind":7}`, "v1", "", true},
		{"empty object", `{}`, "", "", true},
		{"escaped value", `{"apiVersion":"v1","kind":"\u0053ecret"}`, "", "", false},
		{"escaped key", `{"apiVersion":"v1","\u006bind":"Secret"}`, "", "", false},
		{"not an object", `["kind","Secret"]`, "", "", false},
		{"truncated", `{"apiVersion":"v1","kind":"Sec`, "", "", false},
		{"unclosed nested", `{"metadata":{"a":1`, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiVersion, kind, known := topLevelKind([]byte(tt.in))
			if apiVersion != tt.apiVersion || kind != tt.kind || known != tt.known {
				t.Errorf("topLevelKind(%s) = %q, %q, %t; want %q, %q, %t", tt.in, apiVersion, kind, known, tt.apiVersion, tt.kind, tt.known)
			}
		})
	}
}

// FuzzTopLevelKind holds topLevelKind to encoding/json: whenever it claims
// to know a valid object's apiVersion and kind, json agrees, so an object
// it passes as not a Secret is not one.
func FuzzTopLevelKind(f *testing.F) {
	for _, s := range []string{secretJSON, `{"kind":"Secret","apiVersion":"v1"}`, `{"a":{"kind":"Secret"},"kind":"X"}`,
		`{"kind":"\u0053ecret","apiVersion":"v1"}`, `{"kind":"Secret","kind":"X","apiVersion":"v1"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		apiVersion, kind, known := topLevelKind(data)
		var obj map[string]any
		if !known || json.Unmarshal(data, &obj) != nil || obj == nil {
			return
		}
		wantAPIVersion, _ := obj["apiVersion"].(string)
		wantKind, _ := obj["kind"].(string)
		if isSecret, want := apiVersion == "v1" && kind == "Secret", wantAPIVersion == "v1" && wantKind == "Secret"; isSecret != want {
			t.Fatalf("topLevelKind(%q) = %q, %q; encoding/json reads %q, %q", data, apiVersion, kind, wantAPIVersion, wantKind)
		}
		// encoding/json replaces invalid UTF-8; topLevelKind keeps the
		// bytes (no invalid byte sequence reads as "Secret" either way).
		if utf8.ValidString(apiVersion+kind) && (apiVersion != wantAPIVersion || kind != wantKind) {
			t.Fatalf("topLevelKind(%q) = %q, %q; encoding/json reads %q, %q", data, apiVersion, kind, wantAPIVersion, wantKind)
		}
	})
}
