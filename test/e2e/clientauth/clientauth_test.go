package clientauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

var _ = Describe("Webhook client authentication", Ordered, func() {
	var t target

	BeforeAll(func(ctx context.Context) {
		t = newTarget(ctx)
		t.waitActive(ctx)
	})

	It("attributes alice's edit to alice: the API server's calls carry the client certificate", func() {
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "real", "--from-literal=k=v1")
		mustKubectl("alice", "-n", t.ns, "patch", "configmap", "real", "-p", `{"data":{"k":"v2"}}`)
		p := t.path("real")
		Eventually(func() string { return t.file(p) }).Should(ContainSubstring("v2"))
		Eventually(func() []string { return t.authorsOf(p) }).Should(And(ContainElement("alice"), Not(ContainElement("unknown"))))
	})

	It("refuses a forged AdmissionReview without the client CA's certificate at TLS, and it changes nothing", func(ctx context.Context) {
		// mallory claims the next write of ConfigMap "forged".
		forged := review("mallory", t.ns, "forged", false)
		servingCA := servingCAPool()

		// A control first: with the client CA's certificate the very same
		// POST is heard (as a dry run, so that it claims nothing), so the
		// refusals below are the certificate's doing.
		dir := GinkgoT().TempDir()
		goodCrt, goodKey := clientCA.clientCert(dir, "good", clientCN)
		before := admissionRequests()
		resp, err := post(servingCA, tlsCert(goodCrt, goodKey), review("control", t.ns, "control", true))
		Expect(err).NotTo(HaveOccurred())
		Expect(resp).To(ContainSubstring(`"allowed":true`))
		Eventually(admissionRequests).Should(Equal(before + 1))

		wrongCrt, wrongKey := otherCA.clientCert(dir, "wrong-ca", clientCN)
		wrongCNCrt, wrongCNKey := clientCA.clientCert(dir, "wrong-cn", "mallory")
		before = admissionRequests()
		refusedBefore := handshakeErrors()
		for name, certs := range map[string][]tls.Certificate{
			"no client certificate":         nil,
			"a certificate from another CA": tlsCert(wrongCrt, wrongKey),
			"the right CA, the wrong CN":    tlsCert(wrongCNCrt, wrongCNKey),
		} {
			_, err := post(servingCA, certs, forged)
			Expect(err).To(HaveOccurred(), "%s: the webhook heard the forged review", name)
			Expect(err.Error()).To(Or(ContainSubstring("tls:"), ContainSubstring("EOF"), ContainSubstring("connection reset")),
				"%s: the refusal is not a TLS one", name)
		}
		// The handshake itself fails: the server never reads a request.
		conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(mgr.WebhookPort), &tls.Config{RootCAs: servingCA, ServerName: "127.0.0.1"})
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			_ = conn.Close()
		}
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("certificate required"))
		// The manager counted no request from the forger, and every refusal
		// as a failed handshake (three POSTs and the bare dial).
		Consistently(admissionRequests, 2*time.Second).Should(Equal(before))
		Eventually(handshakeErrors).Should(BeNumerically(">=", refusedBefore+4))

		// alice makes the write mallory claimed: the commit names alice.
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "forged", "--from-literal=k=real")
		p := t.path("forged")
		Eventually(func() string { return t.file(p) }).Should(ContainSubstring("real"))
		Expect(t.authorsOf(p)).To(Equal([]string{"alice"}))
	})
})

// review is an AdmissionReview by user for the CREATE of ConfigMap
// ns/name, as anyone could POST it.
func review(user, ns, name string, dryRun bool) []byte {
	GinkgoHelper()
	obj := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": ns}, "data": map[string]any{"k": "real"}}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "forged-" + name, "operation": "CREATE", "dryRun": dryRun,
			"kind":      map[string]string{"group": "", "version": "v1", "kind": "ConfigMap"},
			"resource":  map[string]string{"group": "", "version": "v1", "resource": "configmaps"},
			"namespace": ns, "name": name,
			"userInfo": map[string]any{"username": user},
			"object":   obj,
		},
	})
	Expect(err).NotTo(HaveOccurred())
	return b
}

// servingCAPool trusts the webhook's serving certificate (the manager's
// self-made CA in its cert dir), so that only the client side is wrong.
func servingCAPool() *x509.CertPool {
	GinkgoHelper()
	ca, err := os.ReadFile(filepath.Join(workDir, "webhook-certs", admission.CAFileName))
	Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	Expect(pool.AppendCertsFromPEM(ca)).To(BeTrue())
	return pool
}

func tlsCert(crtPath, keyPath string) []tls.Certificate {
	GinkgoHelper()
	c, err := tls.LoadX509KeyPair(crtPath, keyPath)
	Expect(err).NotTo(HaveOccurred())
	return []tls.Certificate{c}
}

// post sends body to the webhook with certs as the client certificate.
func post(roots *x509.CertPool, certs []tls.Certificate, body []byte) (string, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(mgr.WebhookURL, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// admissionRequests sums gitops_reverser_admission_requests_total over its
// results on the manager's /metrics endpoint; -1 when it cannot be read.
func admissionRequests() float64 { return metricSum("gitops_reverser_admission_requests_total") }

// handshakeErrors reads the manager's count of failed webhook TLS handshakes.
func handshakeErrors() float64 {
	return metricSum("gitops_reverser_webhook_tls_handshake_errors_total")
}

// metricSum reads the manager's metric name, summed over its labels; -1
// when the endpoint cannot be read.
func metricSum(name string) float64 {
	v, err := e2ekit.Metric(mgr.MetricsAddr, name)
	if err != nil {
		return -1
	}
	return v
}
