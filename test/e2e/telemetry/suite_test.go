// Package telemetry holds the end-to-end specs of the operator's
// observability: the manager binary, started with the standard OTEL_*
// variables pointing at an OTLP/HTTP receiver in the test, serves every
// metric docs/metrics.md lists on its Prometheus endpoint, exports one
// trace per recorded change with a span per stage and the commit's SHA,
// and keeps readiness apart from each GitTarget's remote. It runs the
// binary as its own process, as in a cluster, so what is tested is the
// binary's own setup code.
package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

var (
	env        *controlplane.Env
	k8s        client.Client
	gitSrv     *gitserver.Server
	kubeconfig string
	mgr        *controlplane.ManagerProcess
	receiver   *otlpReceiver
	scheme     = runtime.NewScheme()
)

func TestTelemetry(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Telemetry suite (metrics endpoint, OTLP traces, readiness of the manager binary)")
}

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	_, err := controlplane.ManagerBinary()
	Expect(err).NotTo(HaveOccurred())

	receiver = newOTLPReceiver()
	DeferCleanup(receiver.srv.Close)
	// The manager process inherits the environment: the standard
	// variables are all it is told. Short export delays keep the suite
	// quick; the assertions wait on what arrives, never on a time.
	for k, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.srv.URL,
		"OTEL_SERVICE_NAME":           "gitops-reverser-e2e",
		"OTEL_BSP_SCHEDULE_DELAY":     "200",
		"OTEL_METRIC_EXPORT_INTERVAL": "1000",
	} {
		Expect(os.Setenv(k, v)).To(Succeed())
	}

	env, err = controlplane.Start()
	Expect(err).NotTo(HaveOccurred())
	dir := GinkgoT().TempDir()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	gitSrv = gitserver.New(GinkgoT())

	mgr, err = controlplane.StartManagerProcess(controlplane.ProcessOptions{Kubeconfig: kubeconfig, WorkDir: filepath.Join(dir, "manager")})
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.WaitReady(90*time.Second)).To(Succeed(), func() string { return e2ekit.Tail(mgr.Logs(), 100) })
})

var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() && mgr != nil {
		AddReportEntry("manager log", e2ekit.Tail(mgr.Logs(), 200))
	}
})

var _ = AfterSuite(func() {
	if mgr != nil {
		Expect(mgr.Stop(60 * time.Second)).To(Succeed())
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

func kubectlBin() e2ekit.Kubectl {
	return e2ekit.Kubectl{Bin: env.Kubectl(), Kubeconfig: kubeconfig}
}

func mustKubectl(user string, args ...string) string {
	GinkgoHelper()
	return kubectlBin().Must(user, args...)
}

// otlpReceiver is an OTLP/HTTP endpoint for traces (POST /v1/traces,
// protobuf), as a collector serves it; it keeps every span it receives.
// Metrics posted to /v1/metrics are counted.
type otlpReceiver struct {
	srv *httptest.Server

	mu           sync.Mutex
	spans        []*tracepb.Span
	services     map[string]bool
	metricPosts  int
	decodeErrors []string
}

func newOTLPReceiver() *otlpReceiver {
	r := &otlpReceiver{services: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := readBody(req)
	if err != nil {
		r.fail(w, err)
		return
	}
	switch req.URL.Path {
	case "/v1/traces":
		var msg collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &msg); err != nil {
			r.fail(w, err)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					r.services[a.GetValue().GetStringValue()] = true
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	case "/v1/metrics":
		r.mu.Lock()
		r.metricPosts++
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	default:
		http.NotFound(w, req)
	}
}

func (r *otlpReceiver) fail(w http.ResponseWriter, err error) {
	r.mu.Lock()
	r.decodeErrors = append(r.decodeErrors, err.Error())
	r.mu.Unlock()
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func readBody(req *http.Request) ([]byte, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		return io.ReadAll(zr)
	}
	return body, nil
}

// snapshot returns the spans received so far.
func (r *otlpReceiver) snapshot() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

// waitWebhookActive waits until the API server's calls for ns reach the
// manager's webhook.
func waitWebhookActive(ctx context.Context, t e2ekit.Target) {
	GinkgoHelper()
	t.WaitRule(ctx, "True/RuleActive")
	e2ekit.WaitWebhookCalled(kubectlBin(), t.Namespace, func() float64 {
		v, _ := e2ekit.Metric(mgr.MetricsAddr, "gitops_reverser_admission_requests_total")
		return v
	}, true)
}
