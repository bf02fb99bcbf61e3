package plugin

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReduceGuestMessage_cases(t *testing.T) {
	object := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web-config",
"annotations":{"note":"say \"hi\" <now>"}},"data":{"token":"s3cr3t-token-value","short":"abc","list":["alpha-item"]}}`)
	tests := []struct {
		name    string
		msg     string
		objects [][]byte
		want    string
		absent  []string
	}{
		{name: "plain message kept", msg: "refusing this object", objects: [][]byte{object}, want: "refusing this object"},
		{name: "value replaced", msg: "bad token s3cr3t-token-value in web-config", objects: [][]byte{object},
			want: "bad token *** in ***", absent: []string{"s3cr3t"}},
		{name: "values in arrays", msg: "unexpected alpha-item", objects: [][]byte{object}, want: "unexpected ***"},
		{name: "short values kept", msg: "short is abc", objects: [][]byte{object}, want: "short is abc"},
		{name: "echoed raw JSON has escaped values replaced", msg: string(object[:strings.IndexByte(string(object), '\n')]) + `"note":"say \"hi\" \u003cnow\u003e" "say \"hi\" <now>"`,
			objects: [][]byte{object}, absent: []string{"web-config", `say \"hi\"`, "say \"hi\""}},
		{name: "first line only", msg: "line one\ns3cr3t-token-value on line two", objects: [][]byte{object}, want: "line one"},
		{name: "carriage return ends the line", msg: "line one\rrest", objects: [][]byte{object}, want: "line one"},
		{name: "any of the objects", msg: "raw-only-value and as-seen-value",
			objects: [][]byte{[]byte(`{"a":"raw-only-value"}`), []byte(`{"a":"as-seen-value"}`)}, want: "*** and ***"},
		{name: "not JSON contributes nothing", msg: "keep this", objects: [][]byte{[]byte(`{broken`)}, want: "keep this"},
		{name: "invalid UTF-8 replaced", msg: "bad \xff byte", want: "bad \uFFFD byte"},
		{name: "bounded", msg: strings.Repeat("é", 300), want: strings.Repeat("é", maxGuestMessage/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := reduceGuestMessage([]byte(tt.msg), tt.objects...)
			if tt.want != "" && got != tt.want {
				t.Errorf("reduceGuestMessage(%q) = %q, want %q", tt.msg, got, tt.want)
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("reduceGuestMessage(%q) = %q, contains %q", tt.msg, got, a)
				}
			}
			if !utf8.ValidString(got) || len(got) > maxGuestMessage+len("…") {
				t.Errorf("reduceGuestMessage(%q) = %q: not UTF-8 or longer than the bound", tt.msg, got)
			}
		})
	}
}

func TestModule_call_guestErrorReduced(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, goPlugin(t, pkgHostile))
	object := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app-settings","namespace":"shop"},"data":{"dsn":"postgres://u:pw-Xy7@db/app"}}`)
	cc := CallContext{Operation: "UPDATE", User: "alice",
		Resource: Resource{Version: "v1", Resource: "configmaps", Kind: "ConfigMap", Namespace: "shop", Name: "app-settings"}}
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"sanitize", func() error {
			_, err := m.Sanitize(context.Background(), object, []byte(`{"mode":"echo-error"}`), cc)
			return err
		}},
		{"layout", func() error {
			_, err := m.Layout(context.Background(), object, []byte(`{"mode":"echo-error"}`), cc)
			return err
		}},
	} {
		t.Run(call.name, func(t *testing.T) {
			err := call.do()
			if ReasonOf(err) != ReasonPluginFailed {
				t.Fatalf("error = %v, want a PluginFailed", err)
			}
			msg := err.Error()
			for _, v := range []string{"postgres://u:pw-Xy7@db/app", "pw-Xy7", "app-settings", "ConfigMap"} {
				if strings.Contains(msg, v) {
					t.Errorf("error text %q contains the object value %q", msg, v)
				}
			}
			if !strings.Contains(msg, string(ReasonPluginFailed)) || !strings.Contains(msg, `"dsn":"***"`) {
				t.Errorf("error text %q lost the reason or the object's shape", msg)
			}
		})
	}
}
