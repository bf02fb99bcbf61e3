package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// BenchmarkEval_deploymentUpdate measures one evaluation of the default
// policies on a kubectl edit of a Deployment (testdata/deployment-update.json,
// object and oldObject about 3 KB of JSON each, with managedFields):
//
//   - document: EvalDocument on an Input converted once (the default path);
//   - rawInput: the same query given the input as plain Go maps
//     (rego.EvalInput), which OPA round-trips through JSON and converts on
//     every call (without EvalDocument's cheaper cancellation);
//   - convertAndEval: Eval, i.e. NewDocument plus EvalDocument, the cost
//     for a change that only one policy looks at.
func BenchmarkEval_deploymentUpdate(b *testing.B) {
	p := compile(b, defaults(b), testOptions)
	in := deploymentInput(b)
	ctx := context.Background()

	b.Run("document", func(b *testing.B) {
		doc, err := NewDocument(in)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			d, err := p.EvalDocument(ctx, doc)
			if err != nil || !d.Record {
				b.Fatalf("decision %+v, err %v", d, err)
			}
		}
	})
	b.Run("rawInput", func(b *testing.B) {
		raw := rawInput(in)
		b.ReportAllocs()
		for b.Loop() {
			rs, err := p.prepared.Eval(ctx, rego.EvalInput(raw),
				rego.EvalMetrics(noMetrics), rego.EvalGenerateJSON(keepTerm))
			if err != nil {
				b.Fatal(err)
			}
			if d, err := decisionOf(rs); err != nil || !d.Record {
				b.Fatalf("decision %+v, err %v", d, err)
			}
		}
	})
	b.Run("convertAndEval", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := p.Eval(ctx, in)
			if err != nil || !d.Record {
				b.Fatalf("decision %+v, err %v", d, err)
			}
		}
	})
}

// BenchmarkNewDocument_deploymentUpdate measures converting the Input once.
func BenchmarkNewDocument_deploymentUpdate(b *testing.B) {
	in := deploymentInput(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewDocument(in); err != nil {
			b.Fatal(err)
		}
	}
}

// rawInput is the Input as plain Go values, the form rego.EvalInput takes.
func rawInput(in *Input) map[string]any {
	username := in.UserInfo.Username
	if username == "" {
		username = UnknownUser
	}
	groups := make([]any, len(in.UserInfo.Groups))
	for i, g := range in.UserInfo.Groups {
		groups[i] = g
	}
	extra := map[string]any{}
	for k, vals := range in.UserInfo.Extra {
		vs := make([]any, len(vals))
		for i, v := range vals {
			vs[i] = v
		}
		extra[k] = vs
	}
	var obj, old any
	if in.Object != nil {
		obj = in.Object
	}
	if in.OldObject != nil {
		old = in.OldObject
	}
	return map[string]any{
		"operation":   in.Operation,
		"userInfo":    map[string]any{"username": username, "uid": in.UserInfo.UID, "groups": groups, "extra": extra},
		"object":      obj,
		"oldObject":   old,
		"resource":    map[string]any{"group": in.Resource.Group, "version": in.Resource.Version, "resource": in.Resource.Resource},
		"subResource": in.SubResource,
		"namespace":   in.Namespace,
		"name":        in.Name,
		"dryRun":      in.DryRun,
		"kind":        map[string]any{"group": in.Kind.Group, "version": in.Kind.Version, "kind": in.Kind.Kind},
	}
}
