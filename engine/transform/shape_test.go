package transform

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const dockerConfig = `{"auths":{"registry.example.com":{"username":"alice","password":"s3cr3t-pw","auth":"YWxpY2U6czNjcjN0LXB3"}}}`

func secretOf(secretType string, data map[string]string) *unstructured.Unstructured {
	d := map[string]any{}
	for k, v := range data {
		d[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": secretType,
		"metadata": map[string]any{"name": "s", "namespace": "n"}, "data": d,
	}}
}

func TestSanitize_secretShape_keepsWhatTheAPIServerValidates(t *testing.T) {
	tests := []struct {
		name     string
		obj      *unstructured.Unstructured
		jsonKey  string
		keys     []string
		wantJSON string
	}{
		{"dockerconfigjson", secretOf("kubernetes.io/dockerconfigjson", map[string]string{".dockerconfigjson": dockerConfig}),
			".dockerconfigjson", []string{".dockerconfigjson"},
			`{"auths":{"registry.example.com":{"auth":"REDACTED","password":"REDACTED","username":"REDACTED"}}}`},
		{"dockercfg", secretOf("kubernetes.io/dockercfg", map[string]string{".dockercfg": `{"r.example.com":{"auth":"YTpi","email":"a@b.c"}}`}),
			".dockercfg", []string{".dockercfg"}, `{"r.example.com":{"auth":"REDACTED","email":"REDACTED"}}`},
		{"dockerconfigjson that is not JSON", secretOf("kubernetes.io/dockerconfigjson", map[string]string{".dockerconfigjson": "s3cr3t-pw"}),
			"", []string{".dockerconfigjson"}, ""},
		{"tls", secretOf("kubernetes.io/tls", map[string]string{"tls.crt": "-----BEGIN CERT s3cr3t-pw", "tls.key": "-----BEGIN KEY s3cr3t-pw"}),
			"", []string{"tls.crt", "tls.key"}, ""},
		{"basic-auth", secretOf("kubernetes.io/basic-auth", map[string]string{"username": "alice", "password": "s3cr3t-pw"}),
			"", []string{"password", "username"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, view := range []struct {
				name string
				data map[string]any
			}{
				{"sanitized", mustSanitize(t, tt.obj, Options{}).Object["data"].(map[string]any)},
				{"policy view", RedactSecret(tt.obj.Object)["data"].(map[string]any)},
			} {
				var keys []string
				for k, v := range view.data {
					keys = append(keys, k)
					raw, err := base64.StdEncoding.DecodeString(v.(string))
					if err != nil {
						t.Fatalf("%s: %s is not base64: %v", view.name, k, err)
					}
					if strings.Contains(string(raw), "s3cr3t-pw") || strings.Contains(string(raw), "alice") {
						t.Fatalf("%s: %s holds a value: %s", view.name, k, raw)
					}
					if k == tt.jsonKey {
						if !json.Valid(raw) || string(raw) != tt.wantJSON {
							t.Fatalf("%s: %s = %s, want %s", view.name, k, raw, tt.wantJSON)
						}
					} else if v != RedactedData {
						t.Fatalf("%s: %s = %v, want the marker", view.name, k, v)
					}
				}
				if len(keys) != len(tt.keys) {
					t.Fatalf("%s: keys %v, want %v", view.name, keys, tt.keys)
				}
			}
		})
	}
}

func TestRestoreSecretValues_secret_onlyWhatRedactionHid(t *testing.T) {
	real := secretOf("kubernetes.io/dockerconfigjson", map[string]string{".dockerconfigjson": dockerConfig, "extra": "x-value", "gone": "g-value"})
	clean := mustSanitize(t, real, Options{Secrets: Encrypt})
	data := clean.Object["data"].(map[string]any)
	delete(data, "gone")       // a sanitizer removed it
	data["extra"] = "Y2hvc2Vu" // a sanitizer chose another value
	RestoreSecretValues(clean, real, nil)
	want := map[string]any{".dockerconfigjson": real.Object["data"].(map[string]any)[".dockerconfigjson"], "extra": "Y2hvc2Vu"}
	if !reflect.DeepEqual(clean.Object["data"], want) {
		t.Fatalf("data = %v, want %v", clean.Object["data"], want)
	}
}

func TestSanitize_secretFields(t *testing.T) {
	obj := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
			"metadata": map[string]any{"name": "s", "namespace": "n", "labels": map[string]any{"leak": "AgBy3i4OJSWK"}},
			"spec": map[string]any{
				"encryptedData": map[string]any{"password": "AgBy3i4OJSWK", "port": int64(5432)},
				"template":      map[string]any{"type": "Opaque"},
			},
		}}
	}
	fields := []string{"spec.encryptedData"}
	clean := mustSanitize(t, obj(), Options{SecretFields: fields})
	yaml := string(mustMarshal(t, clean))
	if strings.Contains(yaml, "AgBy3i4OJSWK") || strings.Contains(yaml, "5432") {
		t.Fatalf("a value survived:\n%s", yaml)
	}
	if !strings.Contains(yaml, "password: REDACTED") || !strings.Contains(yaml, "type: Opaque") {
		t.Fatalf("unexpected redaction:\n%s", yaml)
	}
	if _, err := Sanitize(obj(), Options{Secrets: Skip, SecretFields: fields}); err == nil {
		t.Fatal("Skip wrote a secret-shaped object")
	}
	policyView := RedactFields(obj().Object, fields)
	if got := policyView["spec"].(map[string]any)["encryptedData"].(map[string]any)["password"]; got != RedactedValue {
		t.Fatalf("policy view holds %v", got)
	}
	real := obj()
	RestoreSecretValues(clean, real, fields)
	if got := clean.Object["spec"].(map[string]any)["encryptedData"]; !reflect.DeepEqual(got, real.Object["spec"].(map[string]any)["encryptedData"]) {
		t.Fatalf("restored %v", got)
	}
}

func TestMarkChangedSecretValues_update(t *testing.T) {
	old := secretOf("Opaque", map[string]string{"same": "s-value", "changed": "before", "removed": "r-value"}).Object
	obj := secretOf("Opaque", map[string]string{"same": "s-value", "changed": "after", "added": "a-value"}).Object
	view := MarkChangedSecretValues(RedactSecret(obj), obj, old)
	want := map[string]any{"same": RedactedData, "changed": RedactedChanged, "added": RedactedChanged}
	if !reflect.DeepEqual(view["data"], want) {
		t.Fatalf("view data = %v, want %v", view["data"], want)
	}
	if unchanged := MarkChangedSecretValues(RedactSecret(old), old, old); !reflect.DeepEqual(unchanged, RedactSecret(old)) {
		t.Fatalf("an unchanged Secret was marked: %v", unchanged)
	}
	fields := []string{"spec.auth"}
	crOld := map[string]any{"apiVersion": "x/v1", "kind": "Creds", "spec": map[string]any{"auth": map[string]any{"user": "u-1", "pass": "p-1"}}}
	crNew := map[string]any{"apiVersion": "x/v1", "kind": "Creds", "spec": map[string]any{"auth": map[string]any{"user": "u-1", "pass": "p-2"}}}
	crView := RedactFields(crNew, fields)
	MarkChangedFields(crView, crNew, crOld, fields)
	if got := crView["spec"].(map[string]any)["auth"]; !reflect.DeepEqual(got, map[string]any{"user": RedactedValue, "pass": RedactedChanged}) {
		t.Fatalf("field view = %v", got)
	}
}
