package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	// The operator's stages declare their instruments when imported, as
	// in the binary; eventBorn families are looked up there.
	_ "github.com/gitops-reverser/gitops-reverser/engine/operator"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

// metricName finds the operator's metric names in PromQL and prose.
var metricName = regexp.MustCompile(`\bgitops_reverser_[a-z0-9_]+`)

// eventBorn are families whose series are born at their first event, with
// a label value known only then (a module's name, a drop's reason): a
// healthy manager does not serve them. They are looked up in the registry
// the binary registers them in instead.
var eventBorn = map[string]string{
	"gitops_reverser_module_errors_total":     "by module, at a module's first failure",
	"gitops_reverser_admission_dropped_total": "by reason, at the webhook's first dropped review",
}

// dashboardMetrics returns the metric names in the dashboard's queries.
func dashboardMetrics() []string {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(root, "charts", "gitops-reverser", "dashboards", "gitops-reverser.json"))
	Expect(err).NotTo(HaveOccurred())
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	Expect(json.Unmarshal(b, &dash)).To(Succeed())
	var exprs []string
	for _, p := range dash.Panels {
		for _, t := range p.Targets {
			exprs = append(exprs, t.Expr)
		}
	}
	Expect(exprs).NotTo(BeEmpty())
	return metricName.FindAllString(strings.Join(exprs, "\n"), -1)
}

// alertMetrics returns the metric names in the rendered PrometheusRule:
// its expressions and the annotations that point at metrics.
func alertMetrics() []string {
	GinkgoHelper()
	rendered := run(helm, "template", "gitops-reverser", filepath.Join(root, "charts", "gitops-reverser"),
		"-n", releaseNamespace, "--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml")
	Expect(rendered).To(ContainSubstring("expr:"))
	return metricName.FindAllString(rendered, -1)
}

// scrape returns the metric names the endpoint at addr serves: families
// with a # TYPE line and the names of samples (a histogram's _bucket,
// _sum and _count too).
func scrape(addr string) (map[string]bool, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(rest)[0]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

// registered reports whether the operator's code declares a metric named
// name (engine/telemetry: every instrument the binary's packages declare
// when imported), even before its first series exists.
func registered(name string) bool { return telemetry.Declared(name) }

var _ = Describe("The dashboard and the alerts", func() {
	It("name only metrics a running manager serves", func(ctx context.Context) {
		used := map[string][]string{}
		for _, n := range dashboardMetrics() {
			used[n] = append(used[n], "dashboard")
		}
		for _, n := range alertMetrics() {
			used[n] = append(used[n], "alerts")
		}
		Expect(used).To(HaveKey("gitops_reverser_backlog_changes"), "the name extraction finds nothing")

		By("running the manager binary and recording one change by alice")
		p, err := controlplane.StartManagerProcess(controlplane.ProcessOptions{
			Kubeconfig: kubeconfig, WorkDir: GinkgoT().TempDir(),
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			if CurrentSpecReport().Failed() {
				AddReportEntry("manager log", e2ekit.Tail(p.Logs(), 200))
			}
			_ = p.Kill()
		})
		Expect(p.WaitReady(120 * time.Second)).To(Succeed())
		git := gitserver.New(GinkgoT())
		target := e2ekit.NewTarget(ctx, k8s, git, e2ekit.TargetOptions{Namespace: "packaging-metrics"})
		target.WaitRule(ctx, "True/RuleActive")
		e2ekit.WaitWebhookCalled(kubectl, target.Namespace, func() float64 {
			v, _ := e2ekit.Metric(p.MetricsAddr, "gitops_reverser_admission_requests_total")
			return v
		}, true)
		kubectl.Must("alice", "-n", target.Namespace, "create", "configmap", "settings", "--from-literal=mode=on")
		Eventually(func() []string { return target.AuthorsOf(target.Path("", "configmaps", "settings")) }).
			Should(ConsistOf("alice"))

		By("scraping /metrics after the push")
		missing := func() []string {
			served, err := scrape(p.MetricsAddr)
			if err != nil {
				return []string{err.Error()}
			}
			var out []string
			for n, where := range used {
				if served[n] {
					continue
				}
				if _, ok := eventBorn[n]; ok && registered(n) {
					continue
				}
				out = append(out, n+" (in the "+strings.Join(where, " and ")+")")
			}
			sort.Strings(out)
			return out
		}
		Eventually(missing).Should(BeEmpty(), "named by the dashboard or the alerts but not served by the manager")

		By("the certificate-expiry gauge reading the served certificate")
		v, err := e2ekit.Metric(p.MetricsAddr, "gitops_reverser_webhook_certificate_expiry_timestamp_seconds")
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(BeNumerically(">", float64(time.Now().Unix())), "expiry "+strconv.FormatFloat(v, 'f', 0, 64))
	}, SpecTimeout(5*time.Minute))
})
