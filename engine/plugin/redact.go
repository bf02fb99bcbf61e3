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
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	// Decoding two fields skips the rest at a fraction of a call's cost.
	if err := json.Unmarshal(object, &head); err != nil {
		return nil, errors.New("plugin call: object is not a JSON object")
	}
	named := cc.Resource.Group == "" && (cc.Resource.Resource == "secrets" || cc.Resource.Kind == "Secret")
	if !(head.APIVersion == "v1" && head.Kind == "Secret") && !named {
		return object, nil
	}
	dec := json.NewDecoder(bytes.NewReader(object))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, errors.New("plugin call: object is not a JSON object")
	}
	if !transform.IsSecret(obj) {
		obj["apiVersion"], obj["kind"] = "v1", "Secret"
	}
	out, err := json.Marshal(transform.RedactSecret(obj))
	if err != nil {
		return nil, fmt.Errorf("plugin call: encoding the redacted Secret: %w", err)
	}
	return out, nil
}
