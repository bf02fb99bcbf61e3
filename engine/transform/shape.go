package transform

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Redaction that keeps the shape the API server validates. A redacted
// Secret must still apply: `kubectl apply` of a recorded file is how a
// repository restores a cluster, and a file the API server refuses
// restores nothing. The API server checks, per type
// (k8s.io/kubernetes/pkg/apis/core/validation.ValidateSecret):
//   - kubernetes.io/dockerconfigjson: `.dockerconfigjson` present and a
//     JSON object;
//   - kubernetes.io/dockercfg: `.dockercfg` present and a JSON object;
//   - kubernetes.io/tls: `tls.crt` and `tls.key` present;
//   - kubernetes.io/basic-auth: `username` or `password` present;
//   - kubernetes.io/ssh-auth: `ssh-privatekey` present;
//   - kubernetes.io/service-account-token: the annotation
//     kubernetes.io/service-account.name (metadata, kept).
// Keys are always kept, so presence holds for every type; the two JSON
// types get a JSON document with the real one's structure (registry names
// and field names) and every string replaced by RedactedValue.

// jsonKeys are the Secret types whose one key holds a JSON document.
var jsonKeys = map[string]string{
	"kubernetes.io/dockerconfigjson": ".dockerconfigjson",
	"kubernetes.io/dockercfg":        ".dockercfg",
}

// redactedData is what a redacted Secret of type secretType holds for key
// in `data`, given the key's real (base64) value.
func redactedData(secretType, key string, value any) string {
	if jsonKeys[secretType] != key {
		return RedactedData
	}
	s, _ := value.(string)
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return RedactedData
	}
	doc, ok := redactJSON(raw)
	if !ok {
		return RedactedData
	}
	return base64.StdEncoding.EncodeToString(doc)
}

// redactedString is what a redacted Secret holds for key in `stringData`.
func redactedString(secretType, key string, value any) string {
	if jsonKeys[secretType] != key {
		return RedactedValue
	}
	s, _ := value.(string)
	doc, ok := redactJSON([]byte(s))
	if !ok {
		return RedactedValue
	}
	return string(doc)
}

// redactJSON keeps a JSON object's structure and replaces every string by
// RedactedValue, every number by 0; false when raw is not a JSON object.
func redactJSON(raw []byte) ([]byte, bool) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, false
	}
	out, err := json.Marshal(redactTree(doc))
	if err != nil {
		return nil, false
	}
	return out, true
}

// redactTree returns v with every string replaced by RedactedValue and
// every number by 0; keys, lists, booleans and nulls stay.
func redactTree(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = redactTree(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = redactTree(e)
		}
		return s
	case string:
		return RedactedValue
	case float64, int64, int, json.Number:
		return int64(0)
	default:
		return t
	}
}

// redactSecretField replaces every value of obj[field] in place with its
// redacted form; a field that is not an object is removed (nothing safe to
// keep).
func redactSecretField(obj map[string]any, field string) {
	m := nestedMap(obj, field)
	if _, ok := obj[field]; ok && m == nil && obj[field] != nil {
		delete(obj, field)
		return
	}
	secretType, _ := obj["type"].(string)
	for k, v := range m {
		if field == "data" {
			m[k] = redactedData(secretType, k, v)
		} else {
			m[k] = redactedString(secretType, k, v)
		}
	}
}

// RestoreSecretValues puts the real values of real back into clean, a
// copy of the same object as Sanitize and the WASM sanitizers left it,
// wherever clean still holds exactly the redacted form of real's value:
// for a Secret every key of `data` and `stringData`, for another kind
// the leaves under fields (see Options.SecretFields). A value a sanitizer
// removed stays removed and a value it changed stays changed: only what
// the redaction hid comes back. clean is modified; the caller encrypts it
// at once and never writes it as it is.
func RestoreSecretValues(clean, real *unstructured.Unstructured, fields []string) {
	if clean == nil || real == nil {
		return
	}
	if IsSecret(real.Object) {
		secretType, _ := real.Object["type"].(string)
		for _, field := range []string{"data", "stringData"} {
			cm, rm := nestedMap(clean.Object, field), nestedMap(real.Object, field)
			for k, v := range cm {
				rv, ok := rm[k]
				if !ok {
					continue
				}
				var redacted string
				if field == "data" {
					redacted = redactedData(secretType, k, rv)
				} else {
					redacted = redactedString(secretType, k, rv)
				}
				if s, isString := v.(string); isString && s == redacted {
					cm[k] = rv
				}
			}
		}
		return
	}
	for _, p := range fields {
		parts := splitPath(p)
		if len(parts) == 0 {
			continue
		}
		parent := nestedMap(clean.Object, parts[:len(parts)-1]...)
		realParent := nestedMap(real.Object, parts[:len(parts)-1]...)
		last := parts[len(parts)-1]
		if parent == nil || realParent == nil {
			continue
		}
		if v, ok := parent[last]; ok {
			if rv, ok := realParent[last]; ok {
				parent[last] = restoreLeaves(v, rv)
			}
		}
	}
}

// restoreLeaves returns clean with each leaf that equals the redacted form
// of real's leaf at the same place replaced by real's.
func restoreLeaves(clean, real any) any {
	switch c := clean.(type) {
	case map[string]any:
		r, ok := real.(map[string]any)
		if !ok {
			return clean
		}
		for k, v := range c {
			if rv, ok := r[k]; ok {
				c[k] = restoreLeaves(v, rv)
			}
		}
		return c
	case []any:
		r, ok := real.([]any)
		if !ok || len(r) != len(c) {
			return clean
		}
		for i := range c {
			c[i] = restoreLeaves(c[i], r[i])
		}
		return c
	default:
		if redactLeaf(real) == clean {
			return real
		}
		return clean
	}
}

// redactLeaf is a field leaf's redacted form: RedactedValue for a string,
// 0 for a number (so a schema that wants a number still validates),
// booleans and nulls as they are.
func redactLeaf(v any) any {
	switch v.(type) {
	case string:
		return RedactedValue
	case float64, int64, int:
		return int64(0)
	default:
		return v
	}
}

// splitPath splits a dotted field path (`spec.encryptedData`).
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, ".") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// redactFields replaces every leaf under each path of obj with its
// redacted form (see redactLeaf), in place, and returns the values it
// hid in each form they may take elsewhere (plain and base64).
func redactFields(obj map[string]any, fields []string) []string {
	var values []string
	add := func(s string) {
		if len(s) >= minLeakLength {
			values = append(values, s, base64.StdEncoding.EncodeToString([]byte(s)))
			if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
				values = append(values, string(dec))
			}
		}
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				t[k] = walk(e)
			}
			return t
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
			return t
		case string:
			add(t)
			return redactLeaf(t)
		default:
			return redactLeaf(t)
		}
	}
	for _, p := range fields {
		parts := splitPath(p)
		if len(parts) == 0 {
			continue
		}
		parent := nestedMap(obj, parts[:len(parts)-1]...)
		last := parts[len(parts)-1]
		if v, ok := parent[last]; ok {
			parent[last] = walk(v)
		}
	}
	return values
}

// RedactFields returns a copy of obj with the leaves under fields
// redacted, as policies see a secret-shaped custom resource; obj is not
// modified. Labels and annotations that carry one of the values lose it
// (RedactedValue).
func RedactFields(obj map[string]any, fields []string) map[string]any {
	if len(fields) == 0 || obj == nil {
		return obj
	}
	c, err := deepCopy(obj)
	if err != nil {
		return map[string]any{"apiVersion": obj["apiVersion"], "kind": obj["kind"]}
	}
	out := c.(map[string]any)
	values := redactFields(out, fields)
	if meta, ok := out["metadata"].(map[string]any); ok {
		out["metadata"] = redactMetadata(meta, values)
	}
	return out
}
