package transform

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SecretHandling says how Sanitize treats a core/v1 Secret. Its values are
// those of the WatchRule field `secrets`, so
// transform.SecretHandling(rule.Spec.Secrets) converts one into the other.
type SecretHandling string

const (
	// Redact keeps a Secret's keys and replaces every value with a marker
	// (RedactedData in `data`, RedactedValue in `stringData`).
	Redact SecretHandling = "Redact"
	// Skip writes nothing for Secrets: Sanitize returns ErrSkipped.
	Skip SecretHandling = "Skip"
	// Encrypt is Redact for Sanitize: WASM sanitizers see the redacted
	// object; the caller then puts the hidden values back
	// (RestoreSecretValues) and encrypts them (engine/sops) before
	// anything is written.
	Encrypt SecretHandling = "Encrypt"
)

// RedactedValue replaces every value of a redacted Secret's `stringData`.
const RedactedValue = "REDACTED"

// RedactedData is RedactedValue in base64; it replaces every value of a
// redacted Secret's `data`, so the file still holds a valid Secret.
const RedactedData = "UkVEQUNURUQ="

// ErrSkipped is returned (wrapped) by Sanitize for an object that must not
// reach Git at all, such as a Secret under Skip. Test with errors.Is.
var ErrSkipped = errors.New("object skipped")

// Options configure Sanitize. The zero value is valid: Secrets redacted.
type Options struct {
	// Secrets says how Secrets are handled; empty means Redact.
	Secrets SecretHandling
	// SecretFields are dotted field paths (`spec.encryptedData`) of an
	// object that is not a Secret whose values are handled as a Secret's:
	// every leaf under them redacted (RedactedValue for strings, 0 for
	// numbers) and labels or annotations carrying one of them dropped, or
	// the object skipped under Skip. For secret-shaped custom resources;
	// ignored for Secrets.
	SecretFields []string
}

// secretMode is how sanitize treats Secret values. secretKeep exists only
// for Fingerprint, whose output is a keyed hash and never leaves the process.
type secretMode int

const (
	secretRedact secretMode = iota
	secretSkip
	secretKeep
)

func (o Options) secretMode() (secretMode, error) {
	switch o.Secrets {
	case "", Redact, Encrypt:
		return secretRedact, nil
	case Skip:
		return secretSkip, nil
	default:
		// Fail closed: an unknown mode must not let values through.
		return 0, fmt.Errorf("unknown secret handling %q (want %q, %q or %q)", o.Secrets, Redact, Skip, Encrypt)
	}
}

// Sanitize returns a cleaned deep copy of obj: everything the API server and
// controllers set (status, server-side metadata, allocated addresses,
// generated selectors and tokens, and so on) is removed, and a Secret's
// values are redacted, or the Secret is skipped with ErrSkipped. obj itself
// is never modified. docs/sanitizer.md lists every rule.
func Sanitize(obj *unstructured.Unstructured, opts Options) (*unstructured.Unstructured, error) {
	mode, err := opts.secretMode()
	if err != nil {
		return nil, fmt.Errorf("sanitize %s: %w", describe(obj), err)
	}
	out, err := sanitize(obj, mode, opts.SecretFields)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: out}, nil
}

// describe names an object in errors without ever printing its content.
func describe(obj *unstructured.Unstructured) string {
	if obj == nil || obj.Object == nil {
		return "<nil>"
	}
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s", obj.GetKind(), name)
}

func sanitize(obj *unstructured.Unstructured, mode secretMode, fields []string) (map[string]interface{}, error) {
	if obj == nil || obj.Object == nil {
		return nil, errors.New("sanitize: nil object")
	}
	what := describe(obj)
	kind := obj.GetKind()
	apiVersion := obj.GetAPIVersion()
	if kind == "" || apiVersion == "" {
		return nil, fmt.Errorf("sanitize %s: apiVersion and kind are required", what)
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, fmt.Errorf("sanitize %s: %w", what, err)
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: kind}
	secretShaped := gk != secretKind && len(fields) > 0
	if (gk == secretKind || secretShaped) && mode == secretSkip {
		return nil, fmt.Errorf("sanitize %s: %w", what, ErrSkipped)
	}

	out, err := copyWithoutServerFields(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("sanitize %s: %w", what, err)
	}
	cleanMetadata(out)
	cleanTemplates(out)
	if rule, ok := kindRules[gk]; ok {
		rule(out)
	}
	if gk == secretKind {
		cleanSecret(out, mode)
	}
	if secretShaped && mode != secretKeep {
		dropLeakingMetadata(out, redactFields(out, fields))
	}
	pruneEmptyMetadata(out)
	return out, nil
}

// droppedMetadata are metadata fields the API server owns; they change on
// every write or identify one incarnation of the object in one cluster.
var droppedMetadata = map[string]bool{
	"uid":                        true,
	"resourceVersion":            true,
	"generation":                 true,
	"creationTimestamp":          true,
	"managedFields":              true,
	"selfLink":                   true,
	"deletionTimestamp":          true,
	"deletionGracePeriodSeconds": true,
}

// droppedAnnotations are written by kubectl or controllers, never chosen by
// a user, and change without any change of the object's meaning.
var droppedAnnotations = []string{
	// A full copy of the last applied manifest: duplicates the object
	// and, for a Secret, holds its values.
	"kubectl.kubernetes.io/last-applied-configuration",
	// Bookkeeping of the Deployment, ReplicaSet and DaemonSet controllers.
	"deployment.kubernetes.io/revision",
	"deployment.kubernetes.io/desired-replicas",
	"deployment.kubernetes.io/max-replicas",
	"deprecated.daemonset.template.generation",
	// Set by the endpoints controllers on every pod change.
	"endpoints.kubernetes.io/last-change-trigger-time",
	// Why a change was made: it goes into the commit's message, not the
	// file (why.go), so a reason alone never changes the file.
	WhyAnnotation,
	ChangeCauseAnnotation,
}

// droppedFinalizers are added by the API server while a deletion with a
// propagation policy is in progress.
var droppedFinalizers = map[string]bool{
	"orphan":             true,
	"foregroundDeletion": true,
}

// copyWithoutServerFields deep-copies obj, leaving out status and the
// server-owned metadata, so that managedFields (often most of the object)
// are never copied only to be thrown away.
func copyWithoutServerFields(obj map[string]interface{}) (map[string]interface{}, error) {
	out := make(map[string]interface{}, len(obj))
	for k, v := range obj {
		switch k {
		case "status":
			continue
		case "metadata":
			meta, ok := v.(map[string]interface{})
			if !ok {
				return nil, fmt.Errorf("metadata: want an object, got %T", v)
			}
			m := make(map[string]interface{}, len(meta))
			for mk, mv := range meta {
				if droppedMetadata[mk] {
					continue
				}
				c, err := deepCopy(mv)
				if err != nil {
					return nil, fmt.Errorf("metadata.%s: %w", mk, err)
				}
				m[mk] = c
			}
			out[k] = m
		default:
			c, err := deepCopy(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = c
		}
	}
	return out, nil
}

// deepCopy copies a JSON-like value. Unlike runtime.DeepCopyJSONValue it
// returns an error instead of panicking on a type JSON cannot hold.
func deepCopy(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, e := range t {
			c, err := deepCopy(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = c
		}
		return m, nil
	case []interface{}:
		s := make([]interface{}, len(t))
		for i, e := range t {
			c, err := deepCopy(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s[i] = c
		}
		return s, nil
	case nil, string, bool, int64, float64, int, int32, float32, uint, uint32, uint64:
		return t, nil
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}

func cleanMetadata(obj map[string]interface{}) {
	meta := nestedMap(obj, "metadata")
	if meta == nil {
		return
	}
	// generateName only matters before the server picks a name.
	if name, _ := meta["name"].(string); name != "" {
		delete(meta, "generateName")
	}
	if ann := nestedMap(meta, "annotations"); ann != nil {
		for _, k := range droppedAnnotations {
			delete(ann, k)
		}
	}
	// A controller reference names the owner by UID: it is valid only for
	// that incarnation of the owner in this cluster, and the controller
	// recreates it. References without `controller: true` are rare and
	// set on purpose, so they stay.
	filterList(meta, "ownerReferences", func(v interface{}) bool {
		ref, ok := v.(map[string]interface{})
		if !ok {
			return true
		}
		controller, _ := ref["controller"].(bool)
		return !controller
	})
	filterList(meta, "finalizers", func(v interface{}) bool {
		s, _ := v.(string)
		return !droppedFinalizers[s]
	})
}

// cleanTemplates removes the `creationTimestamp: null` that older API
// servers write into embedded object metadata of templates.
func cleanTemplates(obj map[string]interface{}) {
	for _, p := range [][]string{
		{"spec", "template", "metadata"},
		{"spec", "jobTemplate", "metadata"},
		{"spec", "jobTemplate", "spec", "template", "metadata"},
	} {
		dropNullTimestamp(nestedMap(obj, p...))
	}
}

func dropNullTimestamp(meta map[string]interface{}) {
	if meta == nil {
		return
	}
	if v, ok := meta["creationTimestamp"]; ok && v == nil {
		delete(meta, "creationTimestamp")
	}
}

// pruneEmptyMetadata drops metadata collections that the rules emptied, or
// that were empty to begin with, so they do not show up as `{}` or `[]`.
func pruneEmptyMetadata(obj map[string]interface{}) {
	meta := nestedMap(obj, "metadata")
	if meta == nil {
		return
	}
	for _, k := range []string{"labels", "annotations"} {
		if m, ok := meta[k].(map[string]interface{}); ok && len(m) == 0 {
			delete(meta, k)
		} else if meta[k] == nil {
			delete(meta, k)
		}
	}
	for _, k := range []string{"ownerReferences", "finalizers"} {
		if s, ok := meta[k].([]interface{}); ok && len(s) == 0 {
			delete(meta, k)
		} else if meta[k] == nil {
			delete(meta, k)
		}
	}
}

// nestedMap returns the object at fields, or nil when any step is missing
// or not an object.
func nestedMap(obj map[string]interface{}, fields ...string) map[string]interface{} {
	cur := obj
	for _, f := range fields {
		next, ok := cur[f].(map[string]interface{})
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// filterList keeps the elements of parent[key] for which keep is true and
// deletes the key when none are left.
func filterList(parent map[string]interface{}, key string, keep func(interface{}) bool) {
	if parent == nil {
		return
	}
	list, ok := parent[key].([]interface{})
	if !ok {
		return
	}
	kept := list[:0]
	for _, v := range list {
		if keep(v) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(parent, key)
		return
	}
	parent[key] = kept
}
