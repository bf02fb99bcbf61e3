package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

var _ = Describe("Capture", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("commits alice's ConfigMap edits and bob's kubectl scale, authored by them", func() {
		f := newFixture(ctx)
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "settings", "--from-literal=color=blue")
		cm := f.path("", "configmaps", "settings")
		Eventually(func() string { return f.file(cm) }).Should(ContainSubstring("color: blue"))
		mustKubectl("alice", "-n", f.ns, "patch", "configmap", "settings", "--type=merge", "-p", `{"data":{"color":"green"}}`)
		Eventually(func() string { return f.file(cm) }).Should(ContainSubstring("color: green"))

		mustKubectl("", "-n", f.ns, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=1")
		dep := f.path("apps", "deployments", "web")
		Eventually(func() string { return f.file(dep) }).Should(ContainSubstring("replicas: 1"))
		mustKubectl("bob", "-n", f.ns, "scale", "deployment", "web", "--replicas=3")
		Eventually(func() string { return f.file(dep) }).Should(ContainSubstring("replicas: 3"))

		Expect(f.authorsOf(cm)).To(HaveEach("alice"))
		Expect(f.authorsOf(dep)[0]).To(Equal("bob"), "the scale commit is bob's")
		content := f.file(cm)
		for _, noise := range []string{"resourceVersion", "uid:", "managedFields", "creationTimestamp"} {
			Expect(content).NotTo(ContainSubstring(noise))
		}
		Expect(f.file(dep)).NotTo(ContainSubstring("status:"))
		for _, c := range gitSrv.Log(f.repo, "main") {
			if !strings.Contains(c.Message, "Reverser-User:") {
				continue // the repository's initial commit
			}
			Expect(c.CommitterName).To(Equal("gitops-reverser"))
			if c.AuthorName == "alice" {
				Expect(c.AuthorEmail).To(Equal("alice@users.test"))
				Expect(c.Message).To(ContainSubstring("Reverser-User: alice"))
				Expect(c.Message).To(ContainSubstring("Reverser-Operation:"))
			}
		}
	})

	It("commits nothing for a request denied by another webhook or a server-side dry run", func() {
		f := newFixture(ctx)
		deny := denyingWebhook(ctx, f.ns)
		DeferCleanup(deny)
		out, err := kubectl("alice", "-n", f.ns, "create", "configmap", "denied", "--from-literal=a=b")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("denied by the test"))

		manifest := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: %s\ndata:\n  a: b\n", f.ns)
		dry := strings.NewReader(manifest)
		cmd := kubectlCmd("alice", "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = dry
		outb, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(outb))
		Expect(string(outb)).To(ContainSubstring("(server dry run)"))

		// A marker change after both proves the pipeline ran past them.
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "marker", "--from-literal=a=b")
		Eventually(func() string { return f.file(f.path("", "configmaps", "marker")) }).ShouldNot(BeEmpty())
		Expect(gitSrv.ListFiles(f.repo, "main")).NotTo(ContainElement(f.path("", "configmaps", "denied")))
		Expect(gitSrv.ListFiles(f.repo, "main")).NotTo(ContainElement(f.path("", "configmaps", "dry")))
	})

	It("attributes racing writes from one resourceVersion to their own writers and never commits a loser", func() {
		f := newFixture(ctx)
		users := []string{"ann", "ben", "cat", "dan"}
		admin := impersonated("setup")
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "race"}, Data: map[string]string{"writer": "setup"}}
		Expect(admin.Create(ctx, cm)).To(Succeed())
		p := f.path("", "configmaps", "race")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("writer: setup"))

		attempted := map[string]string{} // content token -> writer
		var mu sync.Mutex
		for round := 0; round < 4; round++ {
			base := &corev1.ConfigMap{}
			Expect(admin.Get(ctx, client.ObjectKeyFromObject(cm), base)).To(Succeed())
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer GinkgoRecover()
					defer wg.Done()
					user := users[g%len(users)]
					token := fmt.Sprintf("%s-r%d-g%d-%s", user, round, g, rand.String(4))
					mu.Lock()
					attempted[token] = user
					mu.Unlock()
					c := impersonated(user)
					if g%2 == 0 {
						// UPDATE with the shared resourceVersion as precondition.
						upd := base.DeepCopy()
						upd.Data = map[string]string{"writer": token}
						err := c.Update(ctx, upd)
						if err != nil && !apierrors.IsConflict(err) {
							Expect(err).NotTo(HaveOccurred())
						}
						return
					}
					// PATCH without precondition: the API server retries it
					// internally from newer versions.
					patch := []byte(fmt.Sprintf(`{"data":{"writer":%q}}`, token))
					Expect(c.Patch(ctx, base.DeepCopy(), client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
				}(g)
			}
			wg.Wait()
		}
		final := &corev1.ConfigMap{}
		Expect(admin.Get(ctx, client.ObjectKeyFromObject(cm), final)).To(Succeed())
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("writer: " + final.Data["writer"]))

		commits := f.commitsTouching(p)
		Expect(len(commits)).To(BeNumerically(">=", 2))
		attributed := 0
		for _, c := range commits {
			content, err := gitSrv.ReadFileAt(f.repo, c.Hash, p)
			Expect(err).NotTo(HaveOccurred())
			var obj corev1.ConfigMap
			Expect(yaml.Unmarshal(content, &obj)).To(Succeed())
			token := obj.Data["writer"]
			if token == "setup" {
				continue
			}
			writer, ok := attempted[token]
			Expect(ok).To(BeTrue(), "committed content %q was never written", token)
			if c.AuthorName == "unknown" {
				continue
			}
			attributed++
			Expect(c.AuthorName).To(Equal(writer), "commit %s holds %q but is authored by %s", c.Hash, token, c.AuthorName)
		}
		Expect(attributed).To(BeNumerically(">", 0), "at least one racing write is attributed")
	})

	It("records a change made while the webhook is unreachable, author unknown", func() {
		f := newFixture(ctx)
		// The endpoint aborts every request, as an unreachable webhook
		// would; with failurePolicy Ignore the API server goes on.
		op.SetWebhookUnavailable(true)
		DeferCleanup(func() { op.SetWebhookUnavailable(false) })
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "unseen", "--from-literal=a=b")
		p := f.path("", "configmaps", "unseen")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("a: b"))
		Expect(f.authorsOf(p)).To(Equal([]string{"unknown"}))
	})

	It("removes the file of a deleted object, also one held by a finalizer, in a commit by the deleter", func() {
		f := newFixture(ctx)
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "plain", "--from-literal=a=b")
		plain := f.path("", "configmaps", "plain")
		Eventually(func() string { return f.file(plain) }).ShouldNot(BeEmpty())
		mustKubectl("carol", "-n", f.ns, "delete", "configmap", "plain")
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(plain))
		Expect(f.authorsOf(plain)[0]).To(Equal("carol"))

		held := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "held", Finalizers: []string{"reverser.test/hold"}}, Data: map[string]string{"a": "b"}}
		Expect(impersonated("alice").Create(ctx, held)).To(Succeed())
		heldPath := f.path("", "configmaps", "held")
		Eventually(func() string { return f.file(heldPath) }).ShouldNot(BeEmpty())
		mustKubectl("dave", "-n", f.ns, "delete", "configmap", "held", "--wait=false")
		mustKubectl("system:serviceaccount:kube-system:finalizer-bot", "-n", f.ns, "patch", "configmap", "held", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(heldPath))
		Expect(f.authorsOf(heldPath)[0]).To(Equal("dave"))
	})

	It("never writes a value of alice's Secret into any blob of the history", func() {
		f := newFixture(ctx)
		secretValue := "s3cr3t-" + rand.String(12)
		mustKubectl("alice", "-n", f.ns, "create", "secret", "generic", "db", "--from-literal=password="+secretValue)
		// kubectl apply stores the values in the last-applied annotation too.
		manifest := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  namespace: %s\nstringData:\n  token: %s\n", f.ns, secretValue+"-applied")
		cmd := kubectlCmd("alice", "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		p := f.path("", "secrets", "db")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("password:"))
		Eventually(func() string { return f.file(f.path("", "secrets", "applied")) }).Should(ContainSubstring("token:"))
		for hash, blob := range gitSrv.AllBlobs(f.repo) {
			Expect(bytes.Contains(blob, []byte(secretValue))).To(BeFalse(), "blob %s holds the secret value", hash)
		}
		Expect(f.authorsOf(p)).To(Equal([]string{"alice"}))
	})

	It("answers allowed: true while the Git remote is down and the queue is full", func() {
		pool := x509.NewCertPool()
		Expect(pool.AppendCertsFromPEM(caBundle)).To(BeTrue())
		httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		// A target whose remote is down: nothing behind the queue drains
		// fast, and far more reviews are sent than the queue holds.
		review := func(i int) []byte {
			b, _ := json.Marshal(map[string]any{
				"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
				"request": map[string]any{
					"uid": fmt.Sprintf("flood-%d", i), "operation": "UPDATE",
					"resource":  map[string]string{"group": "", "version": "v1", "resource": "configmaps"},
					"namespace": "flood", "name": "x",
					"userInfo":  map[string]any{"username": "mallory"},
					"object":    map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "flood", "uid": "u", "resourceVersion": "1"}},
					"oldObject": map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "flood", "uid": "u", "resourceVersion": "1"}},
				},
			})
			return b
		}
		var slowest time.Duration
		n := op.AdmissionQueueSize() * 2
		for i := 0; i < n; i++ {
			start := time.Now()
			resp, err := httpc.Post(webhookURL, "application/json", bytes.NewReader(review(i)))
			Expect(err).NotTo(HaveOccurred())
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if d := time.Since(start); d > slowest {
				slowest = d
			}
			Expect(resp.StatusCode).To(Equal(http.StatusOK))
			Expect(string(body)).To(ContainSubstring(`"allowed":true`))
			Expect(string(body)).To(ContainSubstring(fmt.Sprintf(`"uid":"flood-%d"`, i)))
		}
		// Reported, not asserted: no test fails on wall-clock time.
		fmt.Printf("webhook: %d reviews past a full queue, slowest round trip %s\n", n, slowest)
	})
})

func kubectlCmd(user string, args ...string) *exec.Cmd {
	full := []string{"--kubeconfig", kubeconfig}
	if user != "" {
		full = append(full, "--as", user, "--as-group", "system:masters")
	}
	return exec.Command(env.Kubectl(), append(full, args...)...)
}

// denyingWebhook installs a second validating webhook that denies CREATE of
// ConfigMaps named "denied" in ns; it returns the cleanup.
func denyingWebhook(ctx context.Context, ns string) func() {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review struct {
			Request struct {
				UID  string `json:"uid"`
				Name string `json:"name"`
			} `json:"request"`
		}
		_ = json.NewDecoder(r.Body).Decode(&review)
		allowed := review.Request.Name != "denied"
		_ = json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"response": map[string]any{"uid": review.Request.UID, "allowed": allowed,
				"status": map[string]any{"message": "denied by the test", "code": 403}},
		})
	}))
	dir := GinkgoT().TempDir()
	ca, err := controlplane.ServingCert(dir)
	Expect(err).NotTo(HaveOccurred())
	cert, err := tls.LoadX509KeyPair(dir+"/tls.crt", dir+"/tls.key")
	Expect(err).NotTo(HaveOccurred())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	url := srv.URL + "/deny"
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-" + ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "deny.reverser.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	Expect(k8s.Create(ctx, cfg)).To(Succeed())
	// The API server picks up new webhook configurations asynchronously.
	Eventually(func() string {
		out, _ := kubectl("alice", "-n", ns, "create", "configmap", "denied", "--from-literal=a=b", "--dry-run=server")
		return out
	}).Should(ContainSubstring("denied by the test"))
	return func() {
		_ = k8s.Delete(context.Background(), cfg)
		srv.Close()
	}
}
