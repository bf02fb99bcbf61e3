package telemetry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// family gathers controller-runtime's registry and returns one family.
func family(t *testing.T, name string) *dto.MetricFamily {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	for _, f := range families {
		if strings.Contains(f.GetName(), "target_info") {
			t.Errorf("family %s served; want no target_info", f.GetName())
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetName(), "otel_") {
					t.Errorf("family %s has label %s; want no scope labels", f.GetName(), l.GetName())
				}
			}
		}
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("metric %s is not served", name)
	return nil
}

func TestInstruments_served_namesKept(t *testing.T) {
	c := NewCounter("gitops_reverser_test_things_total", "Things.")
	cv := NewCounterVec("gitops_reverser_test_results_total", "Results.", "result")
	g := NewGauge("gitops_reverser_test_level", "Level.")
	gv := NewGaugeVec("gitops_reverser_test_depth", "Depth.", "target")
	u := NewUpDown("gitops_reverser_test_queue_depth", "Queue.")
	h := NewHistogramVec("gitops_reverser_test_lag_seconds", "Lag.", []float64{1, 10}, "target")

	c.Inc()
	c.Add(2)
	cv.WithLabelValues("ok").Inc()
	cv.WithLabelValues("failed") // served with 0
	g.Set(7)
	gv.WithLabelValues("ns/a").Set(3)
	u.Inc()
	u.Inc()
	u.Dec()
	h.WithLabelValues("ns/a").Observe(5)

	tests := []struct {
		name   string
		typ    dto.MetricType
		series int
		value  float64
		read   func() float64
	}{
		{"gitops_reverser_test_things_total", dto.MetricType_COUNTER, 1, 3, c.Value},
		{"gitops_reverser_test_results_total", dto.MetricType_COUNTER, 2, 1, cv.WithLabelValues("ok").Value},
		{"gitops_reverser_test_level", dto.MetricType_GAUGE, 1, 7, g.Value},
		{"gitops_reverser_test_depth", dto.MetricType_GAUGE, 1, 3, gv.WithLabelValues("ns/a").Value},
		{"gitops_reverser_test_queue_depth", dto.MetricType_GAUGE, 1, 1, u.Value},
		{"gitops_reverser_test_lag_seconds", dto.MetricType_HISTOGRAM, 1, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := family(t, tt.name)
			if f.GetType() != tt.typ {
				t.Errorf("type %v, want %v", f.GetType(), tt.typ)
			}
			if len(f.GetMetric()) != tt.series {
				t.Errorf("%d series, want %d", len(f.GetMetric()), tt.series)
			}
			if tt.read != nil {
				if got := tt.read(); got != tt.value {
					t.Errorf("value %v, want %v", got, tt.value)
				}
			}
			got, err := Sum(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if tt.typ == dto.MetricType_HISTOGRAM && got != tt.value {
				t.Errorf("count %v, want %v", got, tt.value)
			}
		})
	}
	if got := family(t, "gitops_reverser_test_results_total").GetHelp(); got != "Results." {
		t.Errorf("help %q, want the description", got)
	}
}

func TestOTLPWanted_env(t *testing.T) {
	tests := []struct {
		name           string
		env            map[string]string
		traces, metric bool
	}{
		{"nothing", nil, false, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true, true},
		{"traces endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true, false},
		{"exporters otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"}, true, true},
		{"none wins over endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, false, false},
		{"unsupported exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if got, why := otlpTracesWanted(getenv); got != tt.traces {
				t.Errorf("traces %v (%s), want %v", got, why, tt.traces)
			}
			if got, why := otlpMetricsWanted(getenv); got != tt.metric {
				t.Errorf("metrics %v (%s), want %v", got, why, tt.metric)
			}
		})
	}
}

// The per-change cost of a measurement, against the Prometheus client the
// metrics used before (go test -bench . -benchmem ./engine/telemetry/).
func BenchmarkCounter_Inc(b *testing.B) {
	c := NewCounter("gitops_reverser_bench_things_total", "Things.")
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCounterVec_WithLabelValuesInc(b *testing.B) {
	c := NewCounterVec("gitops_reverser_bench_results_total", "Results.", "result")
	b.ReportAllocs()
	for b.Loop() {
		c.WithLabelValues("ok").Inc()
	}
}

func BenchmarkGaugeVec_WithLabelValuesSet(b *testing.B) {
	g := NewGaugeVec("gitops_reverser_bench_depth", "Depth.", "target")
	b.ReportAllocs()
	for b.Loop() {
		g.WithLabelValues("ns/target").Set(3)
	}
}

func BenchmarkPrometheusCounter_Inc(b *testing.B) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "bench_things_total", Help: "Things."})
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkPrometheusGaugeVec_WithLabelValuesSet(b *testing.B) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bench_depth", Help: "Depth."}, []string{"target"})
	b.ReportAllocs()
	for b.Loop() {
		g.WithLabelValues("ns/target").Set(3)
	}
}
