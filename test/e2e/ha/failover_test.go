package ha

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	neturl "net/url"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/operator"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

const (
	systemNS = "ha-system"
	// Short lease settings, so that the hand-over after a SIGKILL takes
	// seconds; the renew deadline leaves room for a loaded machine.
	leaseDuration = 8 * time.Second
	certSecret    = "webhook-cert"
	certValidity  = time.Minute
	// committer is the author of reconcile commits (e2ekit's GitTarget).
	committer = "gitops-reverser"
)

// change is one write of the stream: its name and when kubectl started
// and ended it.
type change struct {
	name       string
	start, end time.Time
}

var _ = Describe("Two replicas with leader election", func() {
	It("hands over after a SIGKILL of the leader: every change reaches Git, alice's changes after the hand-over are hers", func(ctx context.Context) {
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}})).To(Succeed())
		args := []string{
			"--leader-elect", "--leader-election-namespace", systemNS,
			"--leader-election-lease-duration", leaseDuration.String(),
			"--leader-election-renew-deadline", "6s", "--leader-election-retry-period", "1s",
			"--webhook-cert-secret", systemNS + "/" + certSecret,
			// A minute: the leader rotates every 40 seconds, during the
			// spec, so that calls are seen to keep working across it.
			"--webhook-cert-validity", certValidity.String(),
		}
		// There is no kubelet: Pod objects stand in for the replicas' pods,
		// so that the leader's label on its pod is seen (--leader-pod).
		pods := []string{"replica-0", "replica-1"}
		for _, name := range pods {
			Expect(k8s.Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: name, Labels: map[string]string{"app": "gitops-reverser"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "gitops-reverser"}}},
			})).To(Succeed())
		}
		procs := startManagers(2, func(i int) []string { return []string{"--leader-pod", systemNS + "/" + pods[i]} }, args...)

		t := e2ekit.NewTarget(ctx, k8s, gitSrv, e2ekit.TargetOptions{Namespace: "ha-stream"})
		t.WaitRule(ctx, "True/RuleActive")
		// The leader writes the webhook configuration with its own URL:
		// the API server calls the leader only.
		var leader, follower *controlplane.ManagerProcess
		Eventually(func() string { return webhookURL(ctx) }).Should(Or(Equal(procs[0].WebhookURL), Equal(procs[1].WebhookURL)))
		leader, follower = procs[0], procs[1]
		leaderPod, followerPod := pods[0], pods[1]
		if webhookURL(ctx) == procs[1].WebhookURL {
			leader, follower = procs[1], procs[0]
			leaderPod, followerPod = pods[1], pods[0]
		}
		// In a cluster the webhook Service selects the leader's label.
		Eventually(func() []string { return labelledPods(ctx) }).Should(Equal([]string{leaderPod}))
		e2ekit.WaitWebhookCalled(kubectl(), t.Namespace, func() float64 {
			return metric(leader, "gitops_reverser_admission_requests_total")
		}, true)
		// One CA for both replicas, from the shared Secret.
		var secret corev1.Secret
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: certSecret}, &secret)).To(Succeed())
		Expect(bytes.Equal(webhookCABundle(ctx), secret.Data[admission.CAFileName])).To(BeTrue(), "the caBundle is not the shared Secret's CA")
		firstCert := secret.Data[admission.CertFileName]

		// alice writes a stream of ConfigMaps, one after the other.
		var mu sync.Mutex
		var changes []change
		stop := make(chan struct{})
		var stopOnce sync.Once
		stopStream := func() { stopOnce.Do(func() { close(stop) }) }
		streamed := make(chan struct{})
		DeferCleanup(func() { stopStream(); <-streamed }) // a failed spec stops it too
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(changes) }
		go func() {
			defer GinkgoRecover()
			defer close(streamed)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := change{name: fmt.Sprintf("s-%03d", i), start: time.Now()}
				out, err := kubectl().Run("alice", "-n", t.Namespace, "create", "configmap", c.name, "--from-literal=i="+fmt.Sprint(i))
				Expect(err).NotTo(HaveOccurred(), out)
				c.end = time.Now()
				mu.Lock()
				changes = append(changes, c)
				mu.Unlock()
			}
		}()
		Eventually(count).Should(BeNumerically(">=", 8))

		killed := time.Now()
		Expect(leader.Kill()).To(Succeed())
		atKill := count()
		// The other replica takes the Lease and points the webhook at
		// itself.
		Eventually(func() string { return webhookURL(ctx) }).Should(Equal(follower.WebhookURL))
		// The label moved: the killed leader's pod keeps its label until
		// the new leader removes it.
		Eventually(func() []string { return labelledPods(ctx) }).Should(Equal([]string{followerPod}))
		var lease coordinationv1.Lease
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: "gitops-reverser-leader"}, &lease)).To(Succeed())
		Expect(lease.Spec.AcquireTime).NotTo(BeNil())
		takeover := lease.Spec.AcquireTime.Sub(killed)
		// Keep the stream going until the new leader has matched several
		// of alice's writes.
		Eventually(func() float64 { return metric(follower, "gitops_reverser_admission_matched_total") }).Should(BeNumerically(">=", 8))
		stopStream()
		<-streamed
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: certSecret}, &secret)).To(Succeed())
		rotatedInStream := !bytes.Equal(secret.Data[admission.CertFileName], firstCert)

		mu.Lock()
		all := append([]change(nil), changes...)
		mu.Unlock()
		// Every change reaches Git.
		Eventually(func() []string {
			var missing []string
			for _, c := range all {
				if t.File(t.Path("", "configmaps", c.name)) == "" {
					missing = append(missing, c.name)
				}
			}
			return missing
		}).Should(BeEmpty(), "changes missing from Git")
		// The author of each create is the oldest commit touching its file.
		authors := make([]string, len(all))
		Eventually(func() []string {
			var unset []string
			for i, c := range all {
				a := t.AuthorsOf(t.Path("", "configmaps", c.name))
				if len(a) == 0 {
					unset = append(unset, c.name)
					continue
				}
				authors[i] = a[len(a)-1]
			}
			return unset
		}).Should(BeEmpty())

		// Once a change after the kill is alice's again, every later
		// change is hers: the webhook reaches the new leader only.
		restored := -1
		for i := atKill; i < len(all); i++ {
			if authors[i] == "alice" {
				restored = i
				break
			}
		}
		Expect(restored).To(BeNumerically(">=", 0), "no change after the kill is attributed to alice: %v", authors)
		for i := restored; i < len(all); i++ {
			Expect(authors[i]).To(Equal("alice"), "change %s after the hand-over", all[i].name)
		}
		// A change is alice's, unknown (no claim paired with its watch
		// event), or in a reconcile commit (the committer's name): the new
		// leader's start-up reconcile records what the killed leader had
		// confirmed but not yet committed (its journal is in its own work
		// dir) and what happened while nobody watched.
		for i, a := range authors {
			Expect(a).To(BeElementOf("alice", "unknown", committer), "change %s", all[i].name)
		}
		// The share without attribution, and when those changes were
		// made relative to the kill.
		lost := map[string]int{}
		var firstLost, lastLost time.Duration
		for i, a := range authors {
			if a == "alice" {
				continue
			}
			if len(lost) == 0 {
				firstLost = all[i].start.Sub(killed)
			}
			lastLost = all[i].end.Sub(killed)
			lost[a]++
		}
		n := lost["unknown"] + lost[committer]
		round := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
		report := fmt.Sprintf("lease %s; takeover (Lease acquireTime - SIGKILL) %s; first change attributed again started %s after the kill; "+
			"%d changes (%d before the kill): %d without alice (%.0f%%: %d unknown, %d in reconcile commits), made from %s to %s relative to the kill; "+
			"certificate rotated before the stream ended: %v",
			leaseDuration, round(takeover), round(all[restored].start.Sub(killed)), len(all), atKill,
			n, 100*float64(n)/float64(len(all)), lost["unknown"], lost[committer], round(firstLost), round(lastLost), rotatedInStream)
		fmt.Fprintln(GinkgoWriter, "HA hand-over:", report)
		AddReportEntry("hand-over", report)

		// The certificate rotates (by time, on the new leader): the new
		// leader serves the Secret's new certificate, the caBundle is the
		// Secret's bundle, and alice's next write is still hers.
		Eventually(func() bool {
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: certSecret}, &secret)).To(Succeed())
			return !bytes.Equal(secret.Data[admission.CertFileName], firstCert)
		}).WithTimeout(2*certValidity).Should(BeTrue(), "the certificate never rotated")
		Eventually(func() bool {
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: certSecret}, &secret)).To(Succeed())
			served, err := servedCert(follower.WebhookURL, secret.Data[admission.CAFileName])
			return err == nil && bytes.Equal(served, secret.Data[admission.CertFileName]) &&
				bytes.Equal(webhookCABundle(ctx), secret.Data[admission.CAFileName])
		}).Should(BeTrue(), "the new leader does not serve the rotated certificate with the caBundle in step")
		out, err := kubectl().Run("alice", "-n", t.Namespace, "create", "configmap", "after-rotation", "--from-literal=k=v")
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func() []string { return t.AuthorsOf(t.Path("", "configmaps", "after-rotation")) }).Should(Equal([]string{"alice"}))
	})
})

// servedCert connects to the webhook at url trusting bundle and returns
// the certificate it serves, PEM encoded.
func servedCert(url string, bundle []byte) ([]byte, error) {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	u, err := neturl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: roots, ServerName: u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer func() { _ = conn.Close() }()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: conn.ConnectionState().PeerCertificates[0].Raw}), nil
}

// labelledPods lists the pods of systemNS that carry the leader label.
func labelledPods(ctx context.Context) []string {
	var list corev1.PodList
	if err := k8s.List(ctx, &list, client.InNamespace(systemNS), client.MatchingLabels{operator.LeaderLabel: "true"}); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	return out
}

// webhookURL is the URL of the managed configuration's webhook, "" when
// it has none.
func webhookURL(ctx context.Context) string {
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8s.Get(ctx, client.ObjectKey{Name: admission.DefaultConfigurationName}, &cfg); err != nil || len(cfg.Webhooks) == 0 || cfg.Webhooks[0].ClientConfig.URL == nil {
		return ""
	}
	return *cfg.Webhooks[0].ClientConfig.URL
}

// webhookCABundle is the caBundle of the managed configuration's webhook.
func webhookCABundle(ctx context.Context) []byte {
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8s.Get(ctx, client.ObjectKey{Name: admission.DefaultConfigurationName}, &cfg); err != nil || len(cfg.Webhooks) == 0 {
		return nil
	}
	return cfg.Webhooks[0].ClientConfig.CABundle
}
