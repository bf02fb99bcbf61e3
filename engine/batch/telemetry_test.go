package batch

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

// tracedChange is the span context of a change's confirm span.
func tracedChange(b byte) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{b, 1}, SpanID: trace.SpanID{b, 2}, TraceFlags: trace.FlagsSampled,
	})
}

func TestTarget_committedPushed_spansAndLag(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Log: logr.Discard(), SpanExporter: spans})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	observed := time.Now().Add(-3 * time.Second)
	tests := []struct {
		name       string
		author     change.User
		files      []fileChange
		attributed string
		wantSpans  int // session + commit + push per traced change
		wantLag    float64
	}{
		{"traced changes of a known author", change.User{Username: "alice"}, []fileChange{
			{path: "a.yaml", summary: "CREATE a", trace: tracedChange(1), observed: observed},
			{path: "b.yaml", summary: "CREATE b", trace: tracedChange(2), observed: observed},
		}, "true", 6, 2},
		{"untraced change of an unknown author", change.Unknown, []fileChange{
			{path: "c.yaml", summary: "CREATE c", observed: observed},
		}, "false", 0, 1},
		{"a moved object's old path and a replayed change ride along unmeasured", change.User{Username: "bob"}, []fileChange{
			{path: "old.yaml", delete: true, movedFrom: true, trace: tracedChange(3), observed: observed},
			{path: "d.yaml", summary: "UPDATE d"},
		}, "true", 0, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spans.Reset()
			tg := &target{key: types.NamespacedName{Namespace: "ns", Name: "t" + string(rune('a'+i))}}
			label := tg.key.String()
			s := newSession(tt.author, time.Now())
			for _, f := range tt.files {
				s.add(f, time.Now())
			}
			committedBefore := changesCommitted.WithLabelValues(label, tt.attributed).Value()
			tg.committed(s, "0123abcd", time.Now(), time.Now())
			tg.pushed(time.Now(), time.Now())

			if got := changesCommitted.WithLabelValues(label, tt.attributed).Value() - committedBefore; got != float64(len(s.changes)) {
				t.Errorf("changes committed %v, want %d", got, len(s.changes))
			}
			if lag := lagCount(t, label); lag != tt.wantLag {
				t.Errorf("lag observations %v, want %v", lag, tt.wantLag)
			}
			got := spans.GetSpans()
			if len(got) != tt.wantSpans {
				t.Fatalf("%d spans, want %d", len(got), tt.wantSpans)
			}
			for _, sp := range got {
				if !sp.Parent.IsValid() || sp.Parent.TraceID() != sp.SpanContext.TraceID() {
					t.Errorf("span %s is not a child of its change's span", sp.Name)
				}
				if sp.Name == telemetry.SpanCommit || sp.Name == telemetry.SpanPush {
					if !hasAttr(sp, "0123abcd") {
						t.Errorf("span %s lacks the commit SHA", sp.Name)
					}
				}
			}
			if len(tg.riders) != 0 {
				t.Errorf("%d riders left after the push", len(tg.riders))
			}
		})
	}
}

func hasAttr(sp tracetest.SpanStub, sha string) bool {
	for _, a := range sp.Attributes {
		if a.Key == telemetry.AttrCommit && a.Value.AsString() == sha {
			return true
		}
	}
	return false
}

// lagCount reads the number of lag observations of one target, as a
// scrape of /metrics does.
func lagCount(t *testing.T, label string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "gitops_reverser_change_push_lag_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == label {
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0
}
