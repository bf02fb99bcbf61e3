package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// scope names the instrumentation scope of every instrument and tracer.
const scope = "github.com/gitops-reverser/gitops-reverser"

// meters is the process's MeterProvider. It is made when the package is
// initialised, before any engine package declares its instruments, because
// those are package variables: the Prometheus reader always, and an OTLP
// reader when the process's environment asks for one (the standard OTEL_*
// variables are read at start, as every OTel SDK does).
var (
	meters   *sdkmetric.MeterProvider
	meter    metric.Meter
	otlpNote string // why OTLP metrics are on or off, for Setup's log line
)

// bg is the context of every measurement: the SDK reads a context only for
// exemplars, which are off.
var bg = context.Background()

func init() {
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(newResource()),
		// Exemplars need a sampled span in the context of every
		// measurement; nothing here passes one, so skip the check.
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
	}
	prom, err := otelprom.New(
		otelprom.WithRegisterer(metrics.Registry),
		// The names are the ones the Prometheus client used to declare
		// (gitops_reverser_<noun>_<unit>_total): no suffix added, no
		// scope labels, no target_info series.
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		otel.Handle(fmt.Errorf("registering the Prometheus exporter of the OTel metrics: %w", err))
	} else {
		opts = append(opts, sdkmetric.WithReader(prom))
	}
	if on, why := otlpMetricsWanted(os.Getenv); on {
		exp, err := otlpmetrichttp.New(bg)
		if err != nil {
			otlpNote = "off: " + err.Error()
		} else {
			opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
			otlpNote = "on: " + why
		}
	} else {
		otlpNote = "off: " + why
	}
	meters = sdkmetric.NewMeterProvider(opts...)
	meter = meters.Meter(scope)
}

// otlpMetricsWanted reads the standard variables: OTEL_METRICS_EXPORTER
// decides when set; otherwise an OTLP endpoint turns the export on.
func otlpMetricsWanted(getenv func(string) string) (bool, string) {
	switch v := strings.TrimSpace(getenv("OTEL_METRICS_EXPORTER")); v {
	case "otlp":
		return true, "OTEL_METRICS_EXPORTER=otlp"
	case "none", "prometheus": // the Prometheus endpoint is always served
		return false, "OTEL_METRICS_EXPORTER=" + v
	case "":
	default:
		return false, "OTEL_METRICS_EXPORTER=" + v + " is not supported (otlp, none)"
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if getenv(k) != "" {
			return true, k + " is set"
		}
	}
	return false, "no OTLP endpoint"
}

// Counter is a monotonic count, served as a Prometheus counter.
type Counter struct {
	c   metric.Int64Counter
	opt []metric.AddOption
	id  *seriesID
}

// Inc adds one.
func (c Counter) Inc() { c.c.Add(bg, 1, c.opt...) }

// Add adds v, which must not be negative; the fraction is dropped.
func (c Counter) Add(v float64) { c.c.Add(bg, int64(v), c.opt...) }

// NewCounter declares a counter without labels; it is served with value 0
// from the start, as a Prometheus counter is.
func NewCounter(name, help string) Counter {
	declare(name)
	c := Counter{c: must(meter.Int64Counter(name, metric.WithDescription(help))), id: &seriesID{name: name}}
	c.c.Add(bg, 0)
	return c
}

// CounterVec is a counter with labels.
type CounterVec struct {
	c   metric.Int64Counter
	vec labelled
}

// NewCounterVec declares a counter with the given label names.
func NewCounterVec(name, help string, labels ...string) *CounterVec {
	declare(name)
	return &CounterVec{c: must(meter.Int64Counter(name, metric.WithDescription(help))), vec: labelled{name: name, names: labels}}
}

// WithLabelValues returns the counter of one combination of label values
// (in the order of the names); the series is served from this call on.
func (v *CounterVec) WithLabelValues(values ...string) Counter {
	e, fresh := v.vec.get(values)
	c := Counter{c: v.c, opt: e.add, id: e.id}
	if fresh {
		c.c.Add(bg, 0, c.opt...)
	}
	return c
}

// Gauge is a value that is set, served as a Prometheus gauge.
type Gauge struct {
	g   metric.Float64Gauge
	opt []metric.RecordOption
	id  *seriesID
}

// Set records v.
func (g Gauge) Set(v float64) { g.g.Record(bg, v, g.opt...) }

// NewGauge declares a gauge without labels, 0 until set.
func NewGauge(name, help string) Gauge {
	declare(name)
	g := Gauge{g: must(meter.Float64Gauge(name, metric.WithDescription(help))), id: &seriesID{name: name}}
	g.Set(0)
	return g
}

// GaugeFunc is a gauge whose value is read by a callback at every
// collection (a Prometheus scrape, an OTLP export).
type GaugeFunc struct {
	id *seriesID
}

// NewGaugeFunc declares a gauge without labels whose value f returns at
// every collection; f must be cheap and safe for concurrent use.
func NewGaugeFunc(name, help string, f func() float64) GaugeFunc {
	declare(name)
	// The meter keeps the instrument and its callback; the handle itself
	// has no further use, so it is not stored.
	must(meter.Float64ObservableGauge(name, metric.WithDescription(help),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(f())
			return nil
		})))
	return GaugeFunc{id: &seriesID{name: name}}
}

// Value reads the gauge's series from controller-runtime's registry, as a
// scrape does (calling its callback).
func (g GaugeFunc) Value() float64 { return g.id.value() }

// GaugeVec is a gauge with labels.
type GaugeVec struct {
	g   metric.Float64Gauge
	vec labelled
}

// NewGaugeVec declares a gauge with the given label names.
func NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	declare(name)
	return &GaugeVec{g: must(meter.Float64Gauge(name, metric.WithDescription(help))), vec: labelled{name: name, names: labels}}
}

// WithLabelValues returns the gauge of one combination of label values.
func (v *GaugeVec) WithLabelValues(values ...string) Gauge {
	e, _ := v.vec.get(values)
	return Gauge{g: v.g, opt: e.rec, id: e.id}
}

// UpDown is a gauge that is moved up and down (a count of things in a
// queue), served as a Prometheus gauge.
type UpDown struct {
	c  metric.Int64UpDownCounter
	id *seriesID
}

// Inc adds one.
func (u UpDown) Inc() { u.c.Add(bg, 1) }

// Dec subtracts one.
func (u UpDown) Dec() { u.c.Add(bg, -1) }

// NewUpDown declares an up-down gauge without labels, 0 at start.
func NewUpDown(name, help string) UpDown {
	declare(name)
	u := UpDown{c: must(meter.Int64UpDownCounter(name, metric.WithDescription(help))), id: &seriesID{name: name}}
	u.c.Add(bg, 0)
	return u
}

// Histogram is a distribution with fixed buckets, served as a Prometheus
// histogram (_bucket, _sum, _count).
type Histogram struct {
	h   metric.Float64Histogram
	opt []metric.RecordOption
}

// Observe records v.
func (h Histogram) Observe(v float64) { h.h.Record(bg, v, h.opt...) }

// HistogramVec is a histogram with labels.
type HistogramVec struct {
	h   metric.Float64Histogram
	vec labelled
}

// NewHistogramVec declares a histogram with the given upper bounds of its
// buckets and label names.
func NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	declare(name)
	return &HistogramVec{
		h:   must(meter.Float64Histogram(name, metric.WithDescription(help), metric.WithExplicitBucketBoundaries(buckets...))),
		vec: labelled{name: name, names: labels},
	}
}

// WithLabelValues returns the histogram of one combination of label values.
func (v *HistogramVec) WithLabelValues(values ...string) Histogram {
	e, _ := v.vec.get(values)
	return Histogram{h: v.h, opt: e.rec}
}

// labelled caches the measurement options of each combination of label
// values, so a measurement on a known series costs a map lookup, not an
// allocation of attributes.
type labelled struct {
	name  string
	names []string
	mu    sync.RWMutex
	opts  map[string]series
}

// series holds the options of one combination of label values.
type series struct {
	add []metric.AddOption
	rec []metric.RecordOption
	id  *seriesID
}

// get returns the options of values and whether the series is new.
func (l *labelled) get(values []string) (series, bool) {
	key := strings.Join(values, "\xff") // no allocation for one value
	l.mu.RLock()
	e, ok := l.opts[key]
	l.mu.RUnlock()
	if ok {
		return e, false
	}
	kvs := make([]attribute.KeyValue, len(l.names))
	for i, n := range l.names {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		kvs[i] = attribute.String(n, v)
	}
	set := attribute.NewSet(kvs...)
	o := metric.WithAttributeSet(set)
	e = series{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}, id: &seriesID{name: l.name, labels: kvs}}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.opts[key]; ok {
		return old, false
	}
	if l.opts == nil {
		l.opts = map[string]series{}
	}
	l.opts[key] = e
	return e, true
}

// must reports an instrument's error (only an invalid name or a duplicate
// of another kind) and returns the instrument, which the SDK makes usable
// anyway.
// declared are the names of every instrument declared in the process.
var declared sync.Map

// declare notes name as declared.
func declare(name string) { declared.Store(name, true) }

// Declared reports whether the process declared a metric named name, even
// one with no series yet (a counter by label born at its first event).
func Declared(name string) bool {
	_, ok := declared.Load(name)
	return ok
}

func must[T any](inst T, err error) T {
	if err != nil {
		otel.Handle(err)
	}
	return inst
}

// Sum gathers controller-runtime's registry, as a scrape of /metrics does,
// and returns the sum of a counter's or gauge's series (a histogram's
// count), or an error when name is not served.
func Sum(name string) (float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0, fmt.Errorf("gathering metrics: %w", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum, nil
	}
	return 0, fmt.Errorf("metric %s is not served", name)
}

// seriesID names one series, to read it back.
type seriesID struct {
	name   string
	labels []attribute.KeyValue
}

// Value reads the counter's series from controller-runtime's registry, as
// a scrape does; 0 when it is not served.
func (c Counter) Value() float64 { return c.id.value() }

// Value reads the gauge's series from controller-runtime's registry.
func (g Gauge) Value() float64 { return g.id.value() }

// Value reads the gauge's series from controller-runtime's registry.
func (u UpDown) Value() float64 { return u.id.value() }

func (id *seriesID) value() float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0
	}
	want := attribute.NewSet(id.labels...)
	for _, f := range families {
		if f.GetName() != id.name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(id.labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if v, ok := want.Value(attribute.Key(l.GetName())); !ok || v.AsString() != l.GetValue() {
					continue series
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
