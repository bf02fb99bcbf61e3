package transform

import "reflect"

// lastAppliedAnnotation holds kubectl's copy of the applied manifest, which
// for a Secret holds its values.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// IsSecret reports whether obj (an object decoded from JSON) is a core/v1
// Secret.
func IsSecret(obj map[string]any) bool {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	return apiVersion == "v1" && kind == "Secret"
}

// RedactSecret returns a Secret as a policy or a WASM module may see it:
// every value of `data` replaced by RedactedData and of `stringData` by
// RedactedValue (the keys stay, so a policy can still test for a key; a
// docker config keeps its JSON structure, see shape.go), the
// kubectl last-applied-configuration annotation replaced by RedactedValue,
// every other label or annotation that carries one of the values replaced
// by RedactedValue, and top-level fields a Secret does not define dropped.
// Everything else (metadata, managedFields, type) is kept as it is.
//
// obj is never modified: the result shares obj's unchanged parts, so the
// caller must not modify it either. An object that is not a Secret (see
// IsSecret) is returned as it is.
func RedactSecret(obj map[string]any) map[string]any {
	if !IsSecret(obj) {
		return obj
	}
	values := secretValues(obj)
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if secretFields[k] {
			out[k] = v
		}
	}
	secretType, _ := obj["type"].(string)
	for _, field := range []string{"data", "stringData"} {
		v, ok := out[field]
		if !ok || v == nil {
			continue
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			// Not an object: nothing safe to keep.
			delete(out, field)
			continue
		}
		redacted := make(map[string]any, len(m))
		for key, v := range m {
			if field == "data" {
				redacted[key] = redactedData(secretType, key, v)
			} else {
				redacted[key] = redactedString(secretType, key, v)
			}
		}
		out[field] = redacted
	}
	if meta, ok := out["metadata"].(map[string]any); ok {
		out["metadata"] = redactMetadata(meta, values)
	}
	return out
}

// redactMetadata returns meta with the last-applied annotation and every
// label or annotation that holds one of values replaced by RedactedValue,
// copying only what changes.
func redactMetadata(meta map[string]any, values []string) map[string]any {
	var copied map[string]any
	for _, field := range []string{"labels", "annotations"} {
		m, ok := meta[field].(map[string]any)
		if !ok {
			continue
		}
		var redacted map[string]any
		for key, v := range m {
			s, isString := v.(string)
			if !isString || (key != lastAppliedAnnotation && !containsAny(s, values)) {
				continue
			}
			if redacted == nil {
				redacted = make(map[string]any, len(m))
				for k, v := range m {
					redacted[k] = v
				}
			}
			redacted[key] = RedactedValue
		}
		if redacted == nil {
			continue
		}
		if copied == nil {
			copied = make(map[string]any, len(meta))
			for k, v := range meta {
				copied[k] = v
			}
		}
		copied[field] = redacted
	}
	if copied == nil {
		return meta
	}
	return copied
}

// RedactedChanged stands, in a policy's view of an UPDATE, for a Secret
// value that differs from the old object's: with both redacted alike, a
// value change would look like no change at all (and the default policy
// would drop it as a status-only update). It tells that a value changed,
// which the write itself tells anyway, never what it is.
const RedactedChanged = "REDACTED-CHANGED"

// MarkChangedSecretValues sets, in view (RedactSecret(obj)), every value
// of `data` and `stringData` whose real value differs between obj and old
// to RedactedChanged, copying the maps it changes; it returns the view.
func MarkChangedSecretValues(view, obj, old map[string]any) map[string]any {
	if view == nil {
		return view
	}
	var out map[string]any
	for _, field := range []string{"data", "stringData"} {
		vm, ok := view[field].(map[string]any)
		if !ok {
			continue
		}
		om, _ := obj[field].(map[string]any)
		oldm, _ := old[field].(map[string]any)
		var marked map[string]any
		for k := range vm {
			if reflect.DeepEqual(om[k], oldm[k]) {
				continue
			}
			if marked == nil {
				marked = make(map[string]any, len(vm))
				for key, v := range vm {
					marked[key] = v
				}
			}
			marked[k] = RedactedChanged
		}
		if marked == nil {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(view))
			for k, v := range view {
				out[k] = v
			}
		}
		out[field] = marked
	}
	if out == nil {
		return view
	}
	return out
}

// MarkChangedFields does for the secret fields of a secret-shaped
// resource what MarkChangedSecretValues does for a Secret: every leaf of
// view (RedactFields(obj, fields), which the caller owns) under fields
// whose real value differs between obj and old becomes RedactedChanged.
func MarkChangedFields(view, obj, old map[string]any, fields []string) {
	for _, p := range fields {
		parts := splitPath(p)
		if len(parts) == 0 {
			continue
		}
		parent := nestedMap(view, parts[:len(parts)-1]...)
		last := parts[len(parts)-1]
		if parent == nil {
			continue
		}
		v, ok := parent[last]
		if !ok {
			continue
		}
		parent[last] = markChanged(v, lookup(obj, parts), lookup(old, parts))
	}
}

func lookup(obj map[string]any, parts []string) any {
	parent := nestedMap(obj, parts[:len(parts)-1]...)
	if parent == nil {
		return nil
	}
	return parent[parts[len(parts)-1]]
}

func markChanged(view, now, before any) any {
	switch t := view.(type) {
	case map[string]any:
		nm, _ := now.(map[string]any)
		bm, _ := before.(map[string]any)
		for k, e := range t {
			t[k] = markChanged(e, nm[k], bm[k])
		}
		return t
	case []any:
		ns, _ := now.([]any)
		bs, _ := before.([]any)
		for i, e := range t {
			var n, b any
			if i < len(ns) {
				n = ns[i]
			}
			if i < len(bs) {
				b = bs[i]
			}
			t[i] = markChanged(e, n, b)
		}
		return t
	default:
		if reflect.DeepEqual(now, before) {
			return view
		}
		return RedactedChanged
	}
}
