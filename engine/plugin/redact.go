package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// redactSecret returns object with a Secret's values redacted as
// transform.RedactSecret does (values replaced by markers, keys kept, the
// kubectl last-applied-configuration annotation redacted), and any other
// object as it is. A module runs for whoever wrote the rule, who may not
// read the namespace's Secrets; what it computes reaches a file path, a
// commit and its error text reaches the rule's condition. Objects reach
// the host in every form (sanitized for a sanitizer, raw for the layout of
// a DELETE), so the host redacts every one rather than trusting its caller.
//
// cc names a Secret (core group, resource secrets) for an object whose own
// apiVersion/kind are missing or say otherwise: it is redacted too.
func redactSecret(object []byte, cc CallContext) ([]byte, error) {
	named := cc.Resource.Group == "" && (cc.Resource.Resource == "secrets" || cc.Resource.Kind == "Secret")
	if !named {
		apiVersion, kind, known := topLevelKind(object)
		if known && !(apiVersion == "v1" && kind == "Secret") {
			return object, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(object))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, errors.New("plugin call: object is not a JSON object")
	}
	switch {
	case transform.IsSecret(obj):
	case named:
		obj["apiVersion"], obj["kind"] = "v1", "Secret"
	default:
		return object, nil // topLevelKind could not tell; it is not one
	}
	out, err := json.Marshal(transform.RedactSecret(obj))
	if err != nil {
		return nil, fmt.Errorf("plugin call: encoding the redacted Secret: %w", err)
	}
	return out, nil
}

// topLevelKind reads the apiVersion and kind members of the JSON object in
// data with one pass over its bytes: encoding/json, even decoding into a
// two-field struct, cost about half as much as a light sanitizer call for a
// 4 KB Deployment. known is false when data is not an object of the plain
// form json.Marshal writes (an escape in a key or in those two values), and
// the caller then decodes it in full.
func topLevelKind(data []byte) (apiVersion, kind string, known bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return "", "", false
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		return "", "", true
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return "", "", false
		}
		end := stringEnd(data, i)
		if end < 0 {
			return "", "", false
		}
		key := data[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return "", "", false
		}
		i = skipWS(data, end)
		if i >= len(data) || data[i] != ':' {
			return "", "", false
		}
		start := skipWS(data, i+1)
		if i = skipValue(data, start); i < 0 {
			return "", "", false
		}
		if k := string(key); k == "apiVersion" || k == "kind" {
			v := data[start:i]
			s := ""
			if len(v) >= 2 && v[0] == '"' {
				if bytes.IndexByte(v, '\\') >= 0 {
					return "", "", false
				}
				s = string(v[1 : len(v)-1])
			}
			if k == "kind" {
				kind = s
			} else {
				apiVersion = s
			}
		}
		i = skipWS(data, i)
		switch {
		case i < len(data) && data[i] == ',':
			i = skipWS(data, i+1)
		case i < len(data) && data[i] == '}':
			return apiVersion, kind, true
		default:
			return "", "", false
		}
	}
}

// skipValue returns the offset after the JSON value at i, or -1. It checks
// only what it needs to find the value's end.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end := stringEnd(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}
