package plugin

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
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
			want: []string{`"password":"UkVEQUNURUQ="`},
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
