package policy

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// leakValue is a distinctive value that each failing policy below pushes
// into an error: a to_number parse error, a regular expression error and a
// time parse error quote it in OPA's message, and a label key made of it
// names it in the decision's.
const leakValue = "pa55-(w0rd-7xq"

// leakInput is a change of a ConfigMap or a Secret whose `password` holds
// leakValue, in object and oldObject, and in the last-applied annotation.
func leakInput(kind string) *Input {
	obj := func() map[string]any {
		data := map[string]any{"password": leakValue}
		if kind == "Secret" {
			data["password"] = base64.StdEncoding.EncodeToString([]byte(leakValue))
		}
		return map[string]any{
			"apiVersion": "v1", "kind": kind,
			"metadata": map[string]any{"name": "db", "namespace": "shop", "annotations": map[string]any{
				"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"` + leakValue + `"}}`,
			}},
			"data": data,
		}
	}
	resource := strings.ToLower(kind) + "s"
	return &Input{
		Operation: "UPDATE",
		Object:    obj(),
		OldObject: obj(),
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: resource},
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Namespace: "shop",
		Name:      "db",
	}
}

// leakForms are leakValue as plain text and in base64.
var leakForms = []string{leakValue, base64.StdEncoding.EncodeToString([]byte(leakValue))}

func TestPolicy_Eval_errorHoldsNoValue(t *testing.T) {
	// The ConfigMap cases check the error reduction alone (a ConfigMap is
	// not redacted); the Secret cases check redaction and reduction.
	cases := []struct {
		name   string
		source string
		kind   string // EvalError.Kind
		detail string // in the message
		strict bool   // surfaces only with strict built-in errors (see evalStrict)
	}{
		{
			name:   "type error: arithmetic on the value",
			strict: true,
			source: "labels.x := sprintf(\"%d\", [input.object.data.password + 1])",
			kind:   KindTypeError,
			detail: "plus: operand 1 must be number but got string",
		},
		{
			name:   "builtin error: to_number quotes its operand",
			strict: true,
			source: "labels.x := sprintf(\"%v\", [to_number(input.object.data.password)])",
			kind:   KindBuiltinError,
			detail: "in to_number",
		},
		{
			name:   "builtin error: regex.match quotes the pattern",
			strict: true,
			source: "labels.x := \"y\" if regex.match(input.object.data.password, \"a\")",
			kind:   KindBuiltinError,
			detail: "in regex.match",
		},
		{
			name:   "builtin error: time.parse_rfc3339_ns quotes its operand",
			strict: true,
			source: "labels.x := sprintf(\"%d\", [time.parse_rfc3339_ns(input.oldObject.data.password)])",
			kind:   KindBuiltinError,
			detail: "in time.parse_rfc3339_ns",
		},
		{
			name:   "invalid decision: a label key made of the value",
			source: "labels[input.object.data.password] := 1",
			kind:   KindInvalidDecision,
			detail: "data.reverser.labels holds a value of type number, want strings",
		},
		{
			name:   "invalid decision: a reason that is not a string",
			source: "reasons contains {input.object.data.password: 1}",
			kind:   KindInvalidDecision,
		},
		{
			name:   "conflict: the value against a constant",
			source: "labels.x := input.object.data.password\n\nlabels.x := \"constant\"",
			kind:   KindConflict,
			detail: "a complete rule produced different values",
		},
		{
			name:   "conflict: a function of the value",
			source: "f(x) := x\n\nf(_) := \"constant\"\n\nlabels.x := f(input.object.data.password)",
			kind:   KindConflict,
			detail: "a function produced different values for the same inputs",
		},
		{
			name:   "last-applied annotation through json.unmarshal",
			strict: true,
			source: "labels.x := sprintf(\"%d\", [to_number(json.unmarshal(input.object.metadata.annotations[\"kubectl.kubernetes.io/last-applied-configuration\"]).stringData.password)])",
			kind:   KindBuiltinError,
			detail: "in to_number",
		},
	}
	for _, kind := range []string{"ConfigMap", "Secret"} {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				p := compile(t, map[string]string{"p.rego": "package reverser\n\n" + tc.source + "\n"}, testOptions)
				var err error
				if tc.strict {
					err = evalStrict(t, p, leakInput(kind))
				} else {
					_, err = p.Eval(context.Background(), leakInput(kind))
				}
				if err == nil {
					if kind == "Secret" {
						// Redacted values may evaluate fine (the marker
						// is valid base64, say): nothing to leak then.
						return
					}
					t.Fatal("Eval succeeded, want an error")
				}
				msg := err.Error()
				for _, form := range leakForms {
					if strings.Contains(msg, form) {
						t.Fatalf("error %q holds the value %q", msg, form)
					}
				}
				var ee *EvalError
				if !errors.As(err, &ee) {
					t.Fatalf("error %q is %T, want *EvalError", err, err)
				}
				if kind == "Secret" {
					return // the redacted value may fail differently
				}
				if ee.Kind != tc.kind {
					t.Errorf("kind = %q, want %q (%s)", ee.Kind, tc.kind, msg)
				}
				if tc.detail != "" && !strings.Contains(msg, tc.detail) {
					t.Errorf("error %q does not contain %q", msg, tc.detail)
				}
				if ee.Kind != KindInvalidDecision && (ee.File != "p.rego" || ee.Line == 0) {
					t.Errorf("location = %s:%d, want p.rego and a line (%s)", ee.File, ee.Line, msg)
				}
			})
		}
	}
}

// evalStrict evaluates p as EvalDocument does and returns the reduction
// of the first built-in error: by default OPA makes an expression whose
// built-in fails undefined, so type and built-in errors never reach
// evalError, yet their reduction must hold if they do, and their messages
// quote values. Without a built-in error it returns EvalDocument's error.
func evalStrict(t *testing.T, p *Policy, in *Input) error {
	t.Helper()
	doc, err := NewDocument(in)
	if err != nil {
		t.Fatalf("NewDocument: %v", err)
	}
	var builtinErrs []topdown.Error
	if _, err := p.prepared.Eval(context.Background(), rego.EvalParsedInput(docInput(doc)),
		rego.EvalBuiltinErrorList(&builtinErrs), rego.EvalGenerateJSON(keepTerm)); err != nil {
		return p.evalError(err)
	}
	if len(builtinErrs) > 0 {
		t.Logf("OPA's message, reduced: %s", builtinErrs[0].Message)
		return p.evalError(&builtinErrs[0])
	}
	_, err = p.EvalDocument(context.Background(), doc)
	return err
}

func TestPolicy_Eval_errorNamesRule(t *testing.T) {
	const src = `package reverser

labels.team := "shop"

labels.size := sprintf("%d", [input.object.data.password * 2]) if {
	input.kind.kind == "ConfigMap"
}
`
	p := compile(t, map[string]string{"p.rego": src}, testOptions)
	err := evalStrict(t, p, leakInput("ConfigMap"))
	var ee *EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("Eval error = %v, want *EvalError", err)
	}
	want := "p.rego:5: rule data.reverser.labels.size: type error: mul: operand 1 must be number but got string"
	if !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error = %q, want it to end in %q", err, want)
	}
}

func TestNewDocument_secretRedacted(t *testing.T) {
	const src = `package reverser

labels.password := input.object.data.password
labels.old := input.oldObject.data.password
labels.has := "yes" if input.object.data.password
labels.applied := input.object.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]
`
	cases := []struct {
		name string
		edit func(in *Input)
		want map[string]string
	}{
		{
			name: "Secret",
			edit: func(*Input) {},
			want: map[string]string{"password": transform.RedactedData, "old": transform.RedactedData,
				"has": "yes", "applied": transform.RedactedValue},
		},
		{
			name: "Secret without apiVersion and kind in the objects",
			edit: func(in *Input) {
				delete(in.Object, "kind")
				delete(in.OldObject, "apiVersion")
			},
			want: map[string]string{"password": transform.RedactedData, "old": transform.RedactedData,
				"has": "yes", "applied": transform.RedactedValue},
		},
		{
			name: "DELETE: the Secret as oldObject only",
			edit: func(in *Input) { in.Operation, in.Object = "DELETE", nil },
			want: map[string]string{"old": transform.RedactedData},
		},
	}
	p := compile(t, map[string]string{"p.rego": src}, testOptions)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := leakInput("Secret")
			tc.edit(in)
			before := base64.StdEncoding.EncodeToString([]byte(leakValue))
			d, err := p.Eval(context.Background(), in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			for k, want := range tc.want {
				if d.Labels[k] != want {
					t.Errorf("label %s = %q, want %q", k, d.Labels[k], want)
				}
			}
			if len(d.Labels) != len(tc.want) {
				t.Errorf("labels = %v, want %v", d.Labels, tc.want)
			}
			if in.OldObject["data"].(map[string]any)["password"] != before {
				t.Error("NewDocument modified the caller's object")
			}
		})
	}
}
