package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

// documented is one row of docs/metrics.md's table.
type documented struct {
	name, typ string
	labels    []string
}

var (
	metricRow = regexp.MustCompile("^\\| `(gitops_reverser_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")
	backtick  = regexp.MustCompile("`([a-z_]+)`")
	inParens  = regexp.MustCompile(`\([^)]*\)`)
)

// documentedMetrics parses the table of docs/metrics.md.
func documentedMetrics() []documented {
	GinkgoHelper()
	doc, err := os.ReadFile("../../../docs/metrics.md")
	Expect(err).NotTo(HaveOccurred())
	var out []documented
	for _, line := range strings.Split(string(doc), "\n") {
		m := metricRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d := documented{name: m[1], typ: m[2]}
		for _, l := range backtick.FindAllStringSubmatch(inParens.ReplaceAllString(m[3], ""), -1) {
			d.labels = append(d.labels, l[1])
		}
		out = append(out, d)
	}
	Expect(len(out)).To(BeNumerically(">", 30), "docs/metrics.md lists the metrics in its table")
	return out
}

// scrape reads the manager's /metrics endpoint.
func scrape() map[string]*dto.MetricFamily {
	GinkgoHelper()
	resp, err := http.Get("http://" + mgr.MetricsAddr + "/metrics")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return families
}

// sum adds a family's samples (a histogram's count).
func sum(f *dto.MetricFamily) float64 {
	s := 0.0
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		case m.Histogram != nil:
			s += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			s += m.GetUntyped().GetValue()
		}
	}
	return s
}

func attr(attrs []*commonpb.KeyValue, key string) string {
	for _, a := range attrs {
		if a.GetKey() == key {
			if v, ok := a.GetValue().GetValue().(*commonpb.AnyValue_BoolValue); ok {
				return fmt.Sprint(v.BoolValue)
			}
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// traceOf groups the received spans by trace and returns the traces whose
// confirm span names the ConfigMap name of namespace ns.
func tracesOf(spans []*tracepb.Span, ns, name string) map[string][]*tracepb.Span {
	byTrace := map[string][]*tracepb.Span{}
	for _, s := range spans {
		id := fmt.Sprintf("%x", s.GetTraceId())
		byTrace[id] = append(byTrace[id], s)
	}
	out := map[string][]*tracepb.Span{}
	for id, ss := range byTrace {
		for _, s := range ss {
			if s.GetName() == "confirm" && attr(s.GetAttributes(), "k8s.namespace") == ns && attr(s.GetAttributes(), "k8s.name") == name {
				out[id] = ss
			}
		}
	}
	return out
}

func spanNames(ss []*tracepb.Span) []string {
	var names []string
	for _, s := range ss {
		names = append(names, s.GetName())
	}
	sort.Strings(names)
	return names
}

var _ = Describe("Telemetry of the manager binary", Ordered, func() {
	var ctx context.Context
	var t e2ekit.Target
	names := []string{"first", "second", "third"}
	BeforeAll(func() {
		ctx = context.Background()
		// A policy on the rule, so the policy stage runs for each change.
		t = e2ekit.NewTarget(ctx, k8s, gitSrv, e2ekit.TargetOptions{
			Namespace: "telemetry",
			EditRule: []func(*v1alpha1.WatchRule){func(r *v1alpha1.WatchRule) {
				mustKubectl("", "-n", r.Namespace, "create", "configmap", "policy", "--from-literal=policy.rego="+
					"package reverser\n\nignore contains \"never\" if input.userInfo.username == \"nobody\"\n")
				mustKubectl("", "-n", r.Namespace, "label", "configmap", "policy", v1alpha1.PolicyLabel+"=true")
				r.Spec.Policy = &v1alpha1.PolicyReference{ConfigMapRef: &v1alpha1.LocalObjectReference{Name: "policy"}}
			}},
		})
		waitWebhookActive(ctx, t)
		for _, n := range names {
			mustKubectl("alice", "-n", t.Namespace, "create", "configmap", n, "--from-literal=colour=blue")
		}
		for _, n := range names {
			Eventually(func() string { return t.File(t.Path("", "configmaps", n)) }).ShouldNot(BeEmpty())
		}
	})

	It("serves every metric docs/metrics.md lists, with its type and labels, and counts the changes", func() {
		docs := documentedMetrics()
		// Served after a change and a push, whatever else happened.
		nonZero := []string{
			"gitops_reverser_admission_requests_total", "gitops_reverser_admission_matched_total", "gitops_reverser_admission_duration_seconds",
			"gitops_reverser_changes_confirmed_total", "gitops_reverser_commits_total",
			"gitops_reverser_changes_committed_total", "gitops_reverser_pushes_total",
			"gitops_reverser_journaled_changes_total", "gitops_reverser_journal_syncs_total",
			"gitops_reverser_change_push_lag_seconds", "gitops_reverser_target_reachable",
			"gitops_reverser_webhook_certificate_expiry_timestamp_seconds", "gitops_reverser_reconciles_total",
		}
		var families map[string]*dto.MetricFamily
		Eventually(func(g Gomega) {
			families = scrape()
			for _, n := range nonZero {
				g.Expect(families).To(HaveKey(n))
				g.Expect(sum(families[n])).To(BeNumerically(">", 0), n)
			}
		}).Should(Succeed())
		for _, d := range docs {
			if len(d.labels) == 1 && d.labels[0] == "module" {
				// A series per module appears with the module's first
				// failure; none failed here.
				Expect(families).NotTo(HaveKey(d.name))
				continue
			}
			Expect(families).To(HaveKey(d.name), "documented metric %s is served", d.name)
			f := families[d.name]
			Expect(strings.ToLower(f.GetType().String())).To(Equal(d.typ), d.name)
			Expect(f.GetHelp()).NotTo(BeEmpty(), d.name)
			for _, m := range f.GetMetric() {
				var got []string
				for _, l := range m.GetLabel() {
					got = append(got, l.GetName())
				}
				Expect(got).To(ConsistOf(d.labels), "labels of %s", d.name)
			}
		}
		listed := map[string]bool{}
		for _, d := range docs {
			listed[d.name] = true
		}
		for name := range families {
			if strings.HasPrefix(name, "gitops_reverser_") {
				Expect(listed).To(HaveKey(name), "served metric %s is documented", name)
			}
		}
		Expect(families).NotTo(HaveKey("target_info"))
		Expect(sum(families["gitops_reverser_changes_committed_total"])).To(BeNumerically(">=", len(names)))
	})

	It("exports one trace per recorded change with a span per stage and the commit's SHA", func() {
		want := []string{"admission", "commit", "confirm", "policy", "push", "render", "session"}
		for _, n := range names {
			p := t.Path("", "configmaps", n)
			commits := t.CommitsTouching(p)
			Expect(commits).NotTo(BeEmpty())
			sha := commits[0].Hash
			var trace []*tracepb.Span
			Eventually(func(g Gomega) {
				traces := tracesOf(receiver.snapshot(), t.Namespace, n)
				g.Expect(traces).To(HaveLen(1), "one trace for the change of %s", n)
				for _, ss := range traces {
					trace = ss
				}
				g.Expect(spanNames(trace)).To(Equal(want))
			}).Should(Succeed())
			root := trace[0]
			for _, s := range trace {
				switch s.GetName() {
				case "admission":
					root = s
					Expect(s.GetParentSpanId()).To(BeEmpty())
					Expect(attr(s.GetAttributes(), "k8s.name")).To(Equal(n))
					Expect(attr(s.GetAttributes(), "k8s.resource")).To(Equal("configmaps"))
					Expect(attr(s.GetAttributes(), "k8s.operation")).To(Equal("CREATE"))
				case "confirm":
					Expect(attr(s.GetAttributes(), "gitops_reverser.attributed")).To(Equal("true"))
					Expect(attr(s.GetAttributes(), "k8s.kind")).To(Equal("ConfigMap"))
				case "commit", "push":
					Expect(attr(s.GetAttributes(), "vcs.commit.sha")).To(Equal(sha), "%s span of %s", s.GetName(), n)
					Expect(attr(s.GetAttributes(), "gitops_reverser.target")).To(Equal(t.Namespace + "/" + e2ekit.GitTargetName))
				}
				// Keys only: nothing of the object's content.
				for _, a := range s.GetAttributes() {
					Expect(a.GetValue().GetStringValue()).NotTo(ContainSubstring("blue"))
				}
			}
			for _, s := range trace {
				if s.GetName() != "admission" {
					Expect(s.GetParentSpanId()).NotTo(BeEmpty(), "%s is part of the change's trace", s.GetName())
				}
				Expect(s.GetEndTimeUnixNano()).To(BeNumerically(">=", s.GetStartTimeUnixNano()))
				Expect(s.GetStartTimeUnixNano()).To(BeNumerically(">=", root.GetStartTimeUnixNano()), s.GetName())
			}
		}
		receiver.mu.Lock()
		defer receiver.mu.Unlock()
		Expect(receiver.decodeErrors).To(BeEmpty())
		Expect(receiver.services).To(HaveKey("gitops-reverser-e2e"), "OTEL_SERVICE_NAME names the service")
		Expect(receiver.metricPosts).To(BeNumerically(">", 0), "metrics are exported by OTLP too")
	})

	It("stays ready with a GitTarget whose remote is down, and says so on that target alone", func() {
		bad := e2ekit.NewTarget(ctx, k8s, gitSrv, e2ekit.TargetOptions{
			Namespace: "telemetry-down",
			EditGitTarget: []func(*v1alpha1.GitTarget){func(gt *v1alpha1.GitTarget) {
				gt.Spec.URL = "http://127.0.0.1:1/nowhere.git"
			}},
		})
		badLabel := bad.Namespace + "/" + e2ekit.GitTargetName
		goodLabel := t.Namespace + "/" + e2ekit.GitTargetName
		reachable := func(target string) func() string {
			return func() string {
				f, ok := scrape()["gitops_reverser_target_reachable"]
				if !ok {
					return "not served"
				}
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "target" && l.GetValue() == target {
							return fmt.Sprint(m.GetGauge().GetValue())
						}
					}
				}
				return "no series"
			}
		}
		Eventually(reachable(badLabel)).Should(Equal("0"))
		Expect(reachable(goodLabel)()).To(Equal("1"))
		Eventually(func() string {
			gt := &v1alpha1.GitTarget{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: bad.Namespace, Name: e2ekit.GitTargetName}, gt); err != nil {
				return err.Error()
			}
			c := meta.FindStatusCondition(gt.Status.Conditions, v1alpha1.ReadyCondition)
			if c == nil {
				return "no condition"
			}
			return string(c.Status) + "/" + c.Reason
		}).Should(Equal("False/" + v1alpha1.ReasonRemoteUnreachable))

		resp, err := http.Get("http://" + mgr.ProbeAddr + "/readyz?verbose")
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
		for _, check := range []string{"webhook-ca", "webhook-cert", "webhook-served", "informers"} {
			Expect(string(body)).To(ContainSubstring("[+]"+check+" ok"), string(body))
		}
		expiry := sum(scrape()["gitops_reverser_webhook_certificate_expiry_timestamp_seconds"])
		Expect(time.Unix(int64(expiry), 0)).To(BeTemporally(">", time.Now()))
	})
})
