// Package telemetry is the OpenTelemetry setup of the operator: the metrics
// every stage declares (made with the OTel metrics SDK and served on
// controller-runtime's Prometheus endpoint under their gitops_reverser_*
// names, and pushed by OTLP when configured), and the spans of each
// change's journey (admission → confirm → policy → render → session →
// commit → push), exported by OTLP when configured. The standard OTEL_*
// environment variables configure both; docs/metrics.md lists them.
//
// It receives measurements and stage boundaries from the engine packages and
// hands them to the exporters. With no trace exporter configured, no span
// is made: Tracing is false and the stages skip their span code.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// DefaultServiceName is the service.name of the resource unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES says otherwise.
const DefaultServiceName = "gitops-reverser"

var (
	tracing atomic.Bool
	tracer  trace.Tracer = noop.NewTracerProvider().Tracer(scope)
)

// Tracing reports whether spans are made. Stages check it (or the validity
// of a change's span context) before building attributes.
func Tracing() bool { return tracing.Load() }

// Telemetry holds what Setup started, to flush and stop it.
type Telemetry struct {
	traces *sdktrace.TracerProvider
}

// Options configure Setup beyond the environment.
type Options struct {
	// Log receives one line on what is exported, and export errors.
	Log logr.Logger
	// Getenv reads the environment; nil is os.Getenv.
	Getenv func(string) string
	// SpanExporter, when set, receives every span synchronously instead
	// of an exporter the environment chooses (tests).
	SpanExporter sdktrace.SpanExporter
}

// Setup starts the export of traces when the environment asks for it
// (OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint) and reports the OTLP
// export of metrics, which the package started when the process started.
// Call it once, before the manager starts; Shutdown flushes both.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := o.Log
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Error(err, "OpenTelemetry export")
	}))
	t := &Telemetry{}
	// The sampler comes from OTEL_TRACES_SAMPLER (default
	// parentbased_always_on), the batch limits from OTEL_BSP_*.
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(newResource())}
	if o.SpanExporter != nil {
		opts = append(opts, sdktrace.WithSyncer(o.SpanExporter))
	} else {
		on, why := otlpTracesWanted(getenv)
		log.Info("OpenTelemetry", "otlpTraces", onOff(on)+": "+why, "otlpMetrics", otlpNote)
		if !on {
			return t, nil
		}
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	t.traces = sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(t.traces)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracer = t.traces.Tracer(scope)
	tracing.Store(true)
	return t, nil
}

// ForceFlush exports the spans and metrics recorded so far.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	var errs []error
	if t.traces != nil {
		errs = append(errs, t.traces.ForceFlush(ctx))
	}
	errs = append(errs, meters.ForceFlush(ctx))
	return errors.Join(errs...)
}

// Shutdown flushes and stops the export of traces and metrics.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.traces != nil {
		tracing.Store(false)
		errs = append(errs, t.traces.Shutdown(ctx))
	}
	errs = append(errs, meters.Shutdown(ctx))
	return errors.Join(errs...)
}

// otlpTracesWanted reads the standard variables: OTEL_TRACES_EXPORTER
// decides when set; otherwise an OTLP endpoint turns the export on.
func otlpTracesWanted(getenv func(string) string) (bool, string) {
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "otlp":
		return true, "OTEL_TRACES_EXPORTER=otlp"
	case "none":
		return false, "OTEL_TRACES_EXPORTER=none"
	case "":
	default:
		return false, "OTEL_TRACES_EXPORTER=" + v + " is not supported (otlp, none)"
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if getenv(k) != "" {
			return true, k + " is set"
		}
	}
	return false, "no OTLP endpoint"
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// newResource is the default service name, overridden by
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
func newResource() *resource.Resource {
	def := resource.NewSchemaless(attribute.String("service.name", DefaultServiceName))
	env, err := resource.New(context.Background(), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		otel.Handle(fmt.Errorf("reading the OTel resource from the environment: %w", err))
	}
	r, err := resource.Merge(def, env)
	if err != nil {
		return def
	}
	return r
}

// Span names of the stages of a change, one trace per change.
const (
	SpanAdmission = "admission"
	SpanConfirm   = "confirm"
	SpanPolicy    = "policy"
	SpanRender    = "render"
	SpanSession   = "session"
	SpanCommit    = "commit"
	SpanPush      = "push"
)

// Attribute keys of the spans. An object is named by its key, never by its
// content.
const (
	AttrGroup      = attribute.Key("k8s.group")
	AttrResource   = attribute.Key("k8s.resource")
	AttrKind       = attribute.Key("k8s.kind")
	AttrNamespace  = attribute.Key("k8s.namespace")
	AttrName       = attribute.Key("k8s.name")
	AttrOperation  = attribute.Key("k8s.operation")
	AttrTarget     = attribute.Key("gitops_reverser.target")
	AttrRule       = attribute.Key("gitops_reverser.rule")
	AttrCommit     = attribute.Key("vcs.commit.sha")
	AttrAttributed = attribute.Key("gitops_reverser.attributed")
	AttrRecord     = attribute.Key("gitops_reverser.record")
)

// ObjectAttrs names an object by its key and the operation on it.
func ObjectAttrs(gvr schema.GroupVersionResource, namespace, name, operation string) []attribute.KeyValue {
	return []attribute.KeyValue{
		AttrGroup.String(gvr.Group), AttrResource.String(gvr.Resource),
		AttrNamespace.String(namespace), AttrName.String(name), AttrOperation.String(operation),
	}
}

// Start starts a span of a stage as a child of parent, or as the root of a
// new trace when parent is not valid, at start (now when zero). Call it only
// when Tracing is true or parent is valid.
func Start(parent trace.SpanContext, name string, start time.Time, attrs ...attribute.KeyValue) trace.Span {
	ctx := context.Background()
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	if !start.IsZero() {
		opts = append(opts, trace.WithTimestamp(start))
	}
	_, span := tracer.Start(ctx, name, opts...)
	return span
}

// Record makes a span of a stage that already ran, from start to end, and
// returns its context (for the next stage).
func Record(parent trace.SpanContext, name string, start, end time.Time, attrs ...attribute.KeyValue) trace.SpanContext {
	span := Start(parent, name, start, attrs...)
	span.End(trace.WithTimestamp(end))
	return span.SpanContext()
}
