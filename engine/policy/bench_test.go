package policy

import (
	"context"
	"syscall"
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
//     for a change that only one policy looks at;
//   - convertAndEvalCreate: the same for a CREATE of the new object (a
//     change with one object is converted on demand, see lazyDoc).
//
// cpu-ns/op is the process's CPU time (user+sys, with the garbage
// collector's) per operation: steadier than ns/op on a shared machine.
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
		defer reportCPU(b)()
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
		defer reportCPU(b)()
		for b.Loop() {
			d, err := p.Eval(ctx, in)
			if err != nil || !d.Record {
				b.Fatalf("decision %+v, err %v", d, err)
			}
		}
	})
	b.Run("convertAndEvalPipeline", func(b *testing.B) {
		// The change as the batcher evaluates it: the watch's objects,
		// whose managedFields the informers drop on ingest
		// (engine/confirm trim).
		piped := *in
		piped.Object = withoutManagedFields(b, in.Object)
		piped.OldObject = withoutManagedFields(b, in.OldObject)
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			d, err := p.Eval(ctx, &piped)
			if err != nil || !d.Record {
				b.Fatalf("decision %+v, err %v", d, err)
			}
		}
	})
	b.Run("convertAndEvalCreate", func(b *testing.B) {
		create := &Input{Operation: "CREATE", UserInfo: in.UserInfo, Object: in.Object,
			Resource: in.Resource, Kind: in.Kind, Namespace: in.Namespace, Name: in.Name}
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			d, err := p.Eval(ctx, create)
			if err != nil || !d.Record {
				b.Fatalf("decision %+v, err %v", d, err)
			}
		}
	})
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// cpuTime is the process's user+sys time in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkNewDocument_deploymentUpdate measures converting the Input once.
func BenchmarkNewDocument_deploymentUpdate(b *testing.B) {
	in := deploymentInput(b)
	b.ReportAllocs()
	defer reportCPU(b)()
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

// withoutManagedFields is a copy of obj without metadata.managedFields, as
// the watch's informers hand objects on.
func withoutManagedFields(b *testing.B, obj map[string]any) map[string]any {
	out := copyObject(b, obj)
	if md, ok := out["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
	}
	return out
}
