package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// policyModule names the rule's policy in its health.
const policyModule = "policy"

// moduleError is a failure of one of the rule's modules: the change is not
// written (fail closed) and the rule's condition says why.
type moduleError struct {
	module       string
	reason       string
	pluginReason plugin.Reason
	err          error
}

// Error implements error.
func (e *moduleError) Error() string { return e.module + ": " + e.err.Error() }

// Unwrap returns the module's error.
func (e *moduleError) Unwrap() error { return e.err }

// render turns one change into the file it writes or removes: the
// built-in sanitizer, then the rule's WASM sanitizers in order, then the
// path from the rule's layout module or the default layout, then, for a
// rule that encrypts Secrets, the encryption (encrypt.go; s may be nil
// where nothing is encrypted).
func render(ctx context.Context, c change.Change, r *rules.Rule, target v1alpha1.GitTargetSpec, s *sealer) (fileChange, error) {
	summary := fmt.Sprintf("%s %s %s", c.Operation, resourceName(c), objectName(c))
	fields := secretFieldsOf(r, c.Object)
	if c.Operation == v1alpha1.OperationDelete {
		if ((c.Resource.Group == "" && c.Resource.Resource == "secrets") || len(fields) > 0) && r.Spec.Secrets == v1alpha1.SecretSkip {
			return fileChange{}, transform.ErrSkipped
		}
		obj := c.Object
		if obj != nil && len(fields) > 0 {
			// The layout module sees the secret fields redacted, as on a write.
			obj = &unstructured.Unstructured{Object: transform.RedactFields(obj.Object, fields)}
		}
		p, err := layout(ctx, c, r, target, obj)
		if err != nil {
			return fileChange{}, err
		}
		return fileChange{path: p, delete: true, summary: summary}, nil
	}
	if c.Object == nil {
		return fileChange{}, fmt.Errorf("change of %s has no object", objectName(c))
	}
	clean, err := transform.Sanitize(c.Object, transform.Options{Secrets: transform.SecretHandling(r.Spec.Secrets), SecretFields: fields})
	if err != nil {
		return fileChange{}, fmt.Errorf("sanitizing: %w", err)
	}
	for _, s := range r.Sanitizers {
		in, err := json.Marshal(clean.Object)
		if err != nil {
			return fileChange{}, fmt.Errorf("encoding the object for sanitizer %q: %w", s.Name, err)
		}
		out, err := s.Module.Sanitize(ctx, in, s.Settings, callContext(c))
		if err != nil {
			return fileChange{}, &moduleError{module: s.Name, reason: v1alpha1.ReasonSanitizerFailed, pluginReason: plugin.ReasonOf(err),
				err: fmt.Errorf("sanitizer %q: %s: %w", s.Name, plugin.ReasonOf(err), err)}
		}
		next := &unstructured.Unstructured{}
		if err := next.UnmarshalJSON(out); err != nil {
			return fileChange{}, &moduleError{module: s.Name, reason: v1alpha1.ReasonSanitizerFailed,
				err: fmt.Errorf("sanitizer %q returned an object without apiVersion/kind: %w", s.Name, err)}
		}
		clean = next
	}
	p, err := layout(ctx, c, r, target, clean)
	if err != nil {
		return fileChange{}, err
	}
	if encrypts(r, c.Object, fields) {
		content, err := s.seal(ctx, r, p, clean, c.Object, fields)
		if err != nil {
			return fileChange{}, err
		}
		return fileChange{path: p, content: content, summary: summary}, nil
	}
	content, err := transform.Marshal(clean)
	if err != nil {
		return fileChange{}, fmt.Errorf("rendering YAML: %w", err)
	}
	return fileChange{path: p, content: content, summary: summary}, nil
}

// layout returns the repository path of the object: the rule's layout
// module's choice, cleaned and refused when it escapes the base path, or
// the default layout.
func layout(ctx context.Context, c change.Change, r *rules.Rule, target v1alpha1.GitTargetSpec, obj *unstructured.Unstructured) (string, error) {
	if r.Layout == nil || obj == nil {
		rel := strings.TrimPrefix(transform.DefaultPath("", c.Resource, c.Namespace, c.Name), "/")
		p, err := transform.CleanPath(target.BasePath, rel)
		if err != nil {
			return "", fmt.Errorf("layout of %s: %w", objectName(c), err)
		}
		return p, nil
	}
	in, err := json.Marshal(obj.Object)
	if err != nil {
		return "", fmt.Errorf("encoding the object for layout %q: %w", r.Layout.Name, err)
	}
	chosen, err := r.Layout.Module.Layout(ctx, in, r.Layout.Settings, callContext(c))
	if err != nil {
		return "", &moduleError{module: r.Layout.Name, reason: v1alpha1.ReasonLayoutFailed, pluginReason: plugin.ReasonOf(err),
			err: fmt.Errorf("layout %q: %s: %w", r.Layout.Name, plugin.ReasonOf(err), err)}
	}
	p, err := transform.CleanPath(target.BasePath, chosen)
	if err != nil {
		return "", &moduleError{module: r.Layout.Name, reason: v1alpha1.ReasonLayoutFailed,
			// The refused path (also quoted in err) is the module's text:
			// no object value in it.
			err: fmt.Errorf("layout %q chose %q: %s", r.Layout.Name, plugin.ReduceMessage(chosen, in), plugin.ReduceMessage(err.Error(), in))}
	}
	return p, nil
}

func callContext(c change.Change) plugin.CallContext {
	cc := plugin.CallContext{
		Operation: string(c.Operation),
		User:      c.User.Username,
		Resource: plugin.Resource{
			Group: c.Resource.Group, Version: c.Resource.Version, Resource: c.Resource.Resource,
			Namespace: c.Namespace, Name: c.Name,
		},
	}
	if c.Object != nil {
		cc.Resource.Kind = c.Object.GetKind()
	}
	return cc
}

func resourceName(c change.Change) string {
	if c.Resource.Group == "" {
		return c.Resource.Resource
	}
	return c.Resource.Resource + "." + c.Resource.Group
}

func objectName(c change.Change) string {
	if c.Namespace == "" {
		return c.Name
	}
	return c.Namespace + "/" + c.Name
}
