package transform

import (
	"encoding/base64"
	"strings"
)

// secretFields are the top-level fields a redacted Secret keeps; anything
// else (a field of a future API version) could hold a value and is dropped.
var secretFields = map[string]bool{
	"apiVersion": true,
	"kind":       true,
	"metadata":   true,
	"data":       true,
	"stringData": true,
	"type":       true,
	"immutable":  true,
}

// minLeakLength is the shortest Secret value searched for in labels and
// annotations. Shorter values ("1", "true") occur in ordinary metadata by
// chance, and searching for them would drop metadata for nothing.
const minLeakLength = 4

// cleanSecret redacts a Secret (secretRedact) or, for Fingerprint only
// (secretKeep), keeps its values and folds stringData into data the way the
// API server does on write, so an admission object and the stored Secret
// compare equal.
func cleanSecret(obj map[string]interface{}, mode secretMode) {
	if mode == secretKeep {
		foldStringData(obj)
		return
	}
	for k := range obj {
		if !secretFields[k] {
			delete(obj, k)
		}
	}
	values := secretValues(obj)
	redactSecretField(obj, "data")
	redactSecretField(obj, "stringData")
	dropLeakingMetadata(obj, values)
}

// dropLeakingMetadata removes every label or annotation that carries one
// of values. The last-applied annotation is gone already (cleanMetadata).
func dropLeakingMetadata(obj map[string]interface{}, values []string) {
	meta := nestedMap(obj, "metadata")
	for _, k := range []string{"labels", "annotations"} {
		m := nestedMap(meta, k)
		for key, v := range m {
			if s, ok := v.(string); ok && containsAny(s, values) {
				delete(m, key)
			}
		}
	}
}

// secretValues lists every value of the Secret in each form it may appear
// in elsewhere: as stored (base64 in data, plain in stringData) and decoded
// or encoded.
func secretValues(obj map[string]interface{}) []string {
	var values []string
	add := func(s string) {
		if len(s) >= minLeakLength {
			values = append(values, s)
		}
	}
	for _, v := range nestedMap(obj, "data") {
		s, ok := v.(string)
		if !ok {
			continue
		}
		add(s)
		if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
			add(string(dec))
		}
	}
	for _, v := range nestedMap(obj, "stringData") {
		s, ok := v.(string)
		if !ok {
			continue
		}
		add(s)
		add(base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return values
}

func containsAny(s string, values []string) bool {
	for _, v := range values {
		if strings.Contains(s, v) {
			return true
		}
	}
	return false
}

func foldStringData(obj map[string]interface{}) {
	sd := nestedMap(obj, "stringData")
	if len(sd) > 0 {
		data := nestedMap(obj, "data")
		if data == nil {
			data = make(map[string]interface{}, len(sd))
			obj["data"] = data
		}
		for k, v := range sd {
			if s, ok := v.(string); ok {
				data[k] = base64.StdEncoding.EncodeToString([]byte(s))
			}
		}
	}
	delete(obj, "stringData")
}
