package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

var _ = Describe("The webhook certificate across restarts", func() {
	It("attributes the first change after a restart that kept the work dir to its real user, not unknown", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		t.waitActive(ctx, m)
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "before", "--from-literal=k=v1")
		Eventually(func() []string { return t.authorsOf(t.path("", "configmaps", "before")) }).Should(ContainElement("alice"))
		caFile := filepath.Join(m.workDir, "webhook-certs", admission.CAFileName)
		ca, err := os.ReadFile(caFile)
		Expect(err).NotTo(HaveOccurred())

		// A rollout (SIGTERM) and a crash (SIGKILL): both keep the work
		// dir, hence tls.crt; the configuration must keep its caBundle.
		for i, restart := range []func(){m.stop, m.kill} {
			restart()
			m.start()
			t.waitMatched(m)

			name := fmt.Sprintf("after-%d", i+1)
			mustKubectl("bob", "-n", t.ns, "create", "configmap", name, "--from-literal=k=v")
			p := t.path("", "configmaps", name)
			Eventually(func() []string { return t.authorsOf(p) }).ShouldNot(BeEmpty())
			Expect(t.authorsOf(p)).To(Equal([]string{"bob"}))
			// By now the new process has synced the configuration.
			Expect(webhookCABundle(ctx)).To(Equal(ca), "the caBundle after restart %d", i+1)
			Expect(metric(m, "gitops_reverser_webhook_ca_mismatch")).To(BeZero())
		}
	})

	It("reports a CA that does not sign the serving certificate: log, metric, Warning event, not ready", func(ctx context.Context) {
		m := newManager()
		m.start() // makes the certificate and its CA in the work dir
		t := newTarget(ctx)
		t.waitActive(ctx, m)
		m.stop()

		// Restart with a CA file that did not sign the kept certificate.
		wrongCA, err := admission.SelfSignedCert(GinkgoT().TempDir(), []string{"127.0.0.1"})
		Expect(err).NotTo(HaveOccurred())
		wrongFile := writeFile(GinkgoT().TempDir(), "wrong-ca.crt", string(wrongCA))
		p, err := controlplane.StartManagerProcess(controlplane.ProcessOptions{
			Kubeconfig: kubeconfig, WorkDir: m.workDir, WebhookPort: m.port,
			Args: []string{"--webhook-ca-file", wrongFile},
		})
		Expect(err).NotTo(HaveOccurred())
		m.proc = p
		DeferCleanup(func() {
			if CurrentSpecReport().Failed() {
				AddReportEntry("manager log", tail(p.Logs(), 200))
			}
			_ = p.Kill()
		})

		Eventually(func() float64 { return metric(m, "gitops_reverser_webhook_ca_mismatch") }).Should(Equal(1.0))
		Eventually(func() []byte { return webhookCABundle(ctx) }).Should(Equal(wrongCA))
		Expect(p.Exited()).To(BeFalse())
		Consistently(func() bool {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return p.Ready(c)
		}, 3*time.Second).Should(BeFalse(), "/readyz passed with a mismatched CA")
		Eventually(p.Logs).Should(ContainSubstring("does not match the caBundle"))
		Eventually(func() []string {
			var list eventsv1.EventList
			Expect(k8s.List(ctx, &list)).To(Succeed())
			var reasons []string
			for _, e := range list.Items {
				if e.Regarding.Kind == "ValidatingWebhookConfiguration" && e.Regarding.Name == admission.DefaultConfigurationName {
					reasons = append(reasons, e.Type+"/"+e.Reason)
				}
			}
			return reasons
		}).Should(ContainElement("Warning/" + admission.ReasonCAMismatch))

		// Changes still arrive, through the watch, as unknown: never lost.
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "during", "--from-literal=k=v")
		Eventually(func() []string { return t.authorsOf(t.path("", "configmaps", "during")) }).Should(Equal([]string{"unknown"}))
	})
})

// webhookCABundle is the caBundle of the managed configuration's webhook,
// nil when it has none.
func webhookCABundle(ctx context.Context) []byte {
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8s.Get(ctx, client.ObjectKey{Name: admission.DefaultConfigurationName}, &cfg); err != nil || len(cfg.Webhooks) == 0 {
		return nil
	}
	return bytes.Clone(cfg.Webhooks[0].ClientConfig.CABundle)
}

var probeCount int

// waitMatched waits until a write by the admin reaches the manager's
// webhook and matches the rule: the API server calls the webhook and the
// manager's rule index holds the rule.
func (t target) waitMatched(m *manager) {
	GinkgoHelper()
	before := metric(m, "gitops_reverser_admission_matched_total")
	Eventually(func() bool {
		probeCount++
		mustKubectl("", "-n", t.ns, "create", "configmap", fmt.Sprintf("probe-%d", probeCount), "--from-literal=a=b")
		return metric(m, "gitops_reverser_admission_matched_total") > before
	}).WithPolling(time.Second).Should(BeTrue(), "no write reached the webhook after the restart")
}
