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
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// The webhook listens without a client CA here: anyone who reaches its
// port can post a review. These specs hold the promise that such a review
// may make a write unknown, never another person's.
var _ = Describe("Forged and lost claims", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("never names alice for bob's write when a forged claim for it comes with a flood", func() {
		f := newFixture(ctx)
		admin := impersonated("setup")
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "target"}, Data: map[string]string{"v": "setup"}}
		Expect(admin.Create(ctx, cm)).To(Succeed())
		p := f.path("", "configmaps", "target")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("v: setup"))

		current := &corev1.ConfigMap{}
		Expect(admin.Get(ctx, client.ObjectKeyFromObject(cm), current)).To(Succeed())
		bobs := current.DeepCopy()
		bobs.Data = map[string]string{"v": "bob"}
		// The forged claim: alice, the object's uid, its current
		// resourceVersion and exactly the content bob is about to write.
		forged := reviewOf("forged-1", "UPDATE", "configmaps", f.ns, "target", "alice", bobs, current)
		status, body := postReview(forged)
		Expect(status).To(Equal(http.StatusOK), body)

		before := memStats()
		droppedBefore := droppedTotal()
		// The peak matters more than the state after the flood: sample it.
		var peak atomic.Uint64
		stopSampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				// The live heap (after a collection): what the flood
				// keeps, not the garbage the collector lets pile up
				// before its next cycle, which grows with whatever else
				// this whole-suite process holds.
				if m := memStats(); m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				select {
				case <-stopSampling:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		// The flood: 10,000 reviews for objects the rule selects, from
		// 64 senders, while bob writes.
		var sent, failed atomic.Int64
		var wg sync.WaitGroup
		// 16 KiB each: 4,096 queued would pass the 64 MiB byte bound.
		filler := strings.Repeat("x", 16<<10)
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func(g int) {
				defer GinkgoRecover()
				defer wg.Done()
				for i := g; i < 10000; i += 64 {
					obj := &corev1.ConfigMap{
						TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
						ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("flood-%d", i), UID: "flood-uid", ResourceVersion: "1"},
						Data:       map[string]string{"x": filler},
					}
					status, _ := postReview(reviewOf(fmt.Sprintf("flood-%d", i), "UPDATE", "configmaps", f.ns, obj.Name, "mallory", obj, obj))
					if status != http.StatusOK {
						failed.Add(1)
					}
					sent.Add(1)
				}
			}(g)
		}
		Eventually(func() int64 { return sent.Load() }).Should(BeNumerically(">=", 2000))
		Expect(impersonated("bob").Update(ctx, bobs)).To(Succeed(), "the API server write succeeds")
		wg.Wait()
		close(stopSampling)
		<-sampled
		// Once the webhook's workers have drained the queue, nothing of
		// the flood may stay behind.
		Eventually(func() float64 { return metricSum("gitops_reverser_admission_queue_depth") }).Should(BeZero())
		after := memStats()
		figure := fmt.Sprintf("flood: %d reviews sent, %d not 200, %v dropped by the webhook; HeapInuse %d MiB before, %d MiB peak, %d MiB after; Sys %d -> %d MiB",
			sent.Load(), failed.Load(), droppedTotal()-droppedBefore, before.HeapInuse>>20, peak.Load()>>20, after.HeapInuse>>20, before.Sys>>20, after.Sys>>20)
		fmt.Println(figure)
		AddReportEntry("flood memory", figure)
		Expect(failed.Load()).To(BeZero(), "every flooded review is answered 200")
		// The queue holds at most 64 MiB of bodies (it held up to 4,096 x
		// 8 MiB before). This process is the whole suite (API clients and
		// caches of every spec) and also runs the test's 64 senders, whose
		// marshalled reviews are garbage the collector lets grow with the
		// live heap, so the figure read is the growth of the live heap
		// (sampled after a collection), not the total: HeapInuse without
		// collections measured 190-330 MiB of peak growth with the race
		// detector, once 610 MiB on a CI run of the whole suite (garbage
		// paced by a larger live heap). The chart limits the manager alone
		// to 512 MiB.
		Expect(peak.Load()-min(peak.Load(), before.HeapInuse)).To(BeNumerically("<", uint64(512<<20)), "growth of the heap in use during the flood")
		Expect(after.HeapInuse-min(after.HeapInuse, before.HeapInuse)).To(BeNumerically("<", uint64(64<<20)), "heap retained once the flood drained")

		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("v: bob"))
		author := f.commitsTouching(p)[0].AuthorName
		fmt.Fprintf(GinkgoWriter, "bob's write is committed as %q\n", author)
		Expect(author).To(BeElementOf("bob", "unknown"), "never alice")
	})

	It("never names the deleter of a later version from a DELETE claim of an older one", func() {
		f := newFixture(ctx)
		admin := impersonated("setup")
		cs, err := kubernetes.NewForConfig(env.Config)
		Expect(err).NotTo(HaveOccurred())
		for _, webhookUp := range []bool{false, true} {
			name := fmt.Sprintf("doomed-%v", webhookUp)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Data: map[string]string{"v": "1"}}
			Expect(admin.Create(ctx, cm)).To(Succeed())
			p := f.path("", "configmaps", name)
			Eventually(func() string { return f.file(p) }).Should(ContainSubstring("v: \"1\""))
			old := &corev1.ConfigMap{}
			Expect(admin.Get(ctx, client.ObjectKeyFromObject(cm), old)).To(Succeed())
			// alice's DELETE claim from the first version: forged here; a
			// denied or conflicting delete leaves the same.
			status, body := postReview(reviewOf("old-delete-"+name, "DELETE", "configmaps", f.ns, name, "alice", nil, old))
			Expect(status).To(Equal(http.StatusOK), body)

			cur := old.DeepCopy()
			cur.Data = map[string]string{"v": "2"}
			Expect(admin.Update(ctx, cur)).To(Succeed())
			Eventually(func() string { return f.file(p) }).Should(ContainSubstring("v: \"2\""))

			w, err := cs.CoreV1().ConfigMaps(f.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: cur.ResourceVersion})
			Expect(err).NotTo(HaveOccurred())
			if !webhookUp {
				op.SetWebhookUnavailable(true)
			}
			mustKubectl("carol", "-n", f.ns, "delete", "configmap", name)
			op.SetWebhookUnavailable(false)
			var deleted *corev1.ConfigMap
			Eventually(w.ResultChan()).Should(Receive(Satisfy(func(e watch.Event) bool {
				if e.Type != watch.Deleted {
					return false
				}
				deleted, _ = e.Object.(*corev1.ConfigMap)
				return deleted != nil
			})))
			w.Stop()
			// What the informer's DeleteFunc gets: the last state with the
			// deletion's own resourceVersion, not the one the delete
			// started from.
			fmt.Fprintf(GinkgoWriter, "delete from resourceVersion %s; the DELETED event carries %s\n", cur.ResourceVersion, deleted.ResourceVersion)
			Expect(deleted.ResourceVersion).NotTo(Equal(cur.ResourceVersion))

			Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(p))
			author := f.commitsTouching(p)[0].AuthorName
			if webhookUp {
				Expect(author).To(Equal("carol"), "carol's claim starts from the last version")
			} else {
				Expect(author).To(Equal("unknown"), "alice's claim is from an older version; carol's never arrived")
			}
		}
	})

	It("commits the changes of users whose names hold a newline, a NUL or invalid UTF-8, each trailer on one line", func() {
		f := newFixture(ctx)
		// The API server takes these names from a client certificate's
		// common name (Go's x509 keeps control characters in a
		// UTF8String; it refuses invalid UTF-8, which JSON could not
		// carry to the webhook either: it decodes to U+FFFD).
		// A name with invalid UTF-8 comes by impersonation (an HTTP
		// header may carry the byte).
		names := []string{"eve\nReverser-User: alice", "nul\x00byte", "tab\there", "bad\xffbyte"}
		for i, name := range names {
			var c client.Client
			if utf8.ValidString(name) {
				u, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
				Expect(err).NotTo(HaveOccurred())
				c, err = client.New(u.Config(), client.Options{Scheme: scheme})
				Expect(err).NotTo(HaveOccurred())
			} else {
				c = impersonated(name)
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("odd-%d", i)}, Data: map[string]string{"by": fmt.Sprint(i)}}
			Expect(c.Create(ctx, cm)).To(Succeed())
		}
		for i, name := range names {
			p := f.path("", "configmaps", fmt.Sprintf("odd-%d", i))
			Eventually(func() string { return f.file(p) }).Should(ContainSubstring(fmt.Sprintf("by: \"%d\"", i)), "the change by %q is committed", name)
			c := f.commitsTouching(p)[0]
			quoted := fmt.Sprintf("%q", name)
			if !utf8.ValidString(name) {
				// The API server's JSON turns the byte into U+FFFD on
				// the way to the webhook: a printable name then.
				fmt.Fprintf(GinkgoWriter, "%q is committed as %q\n", name, c.AuthorName)
				Expect(c.AuthorName).To(BeElementOf(quoted, strings.ToValidUTF8(name, "\uFFFD")))
				quoted = c.AuthorName
			}
			Expect(c.AuthorName).To(Equal(quoted))
			Expect(c.Message).To(ContainSubstring("\nReverser-User: " + quoted + "\n"))
			for _, line := range strings.Split(c.Message, "\n") {
				Expect(line).NotTo(Equal("Reverser-User: alice"), "no injected trailer")
				Expect(line).NotTo(ContainSubstring("\x00"))
			}
		}
	})

	It("attributes a Namespace alice creates under a ClusterWatchRule with a namespace selector to alice", func() {
		f := newFixture(ctx)
		mark := "ns-" + rand.String(6)
		nsName := "e2e-" + mark
		namespaceRule(ctx, f, mark)
		DeferCleanup(func() {
			_ = k8s.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName}})
		})
		applyNamespaceAs("alice", nsName, mark, 1)

		nsPath := "cluster/_cluster/core/namespaces/" + nsName + ".yaml"
		cmPath := "cluster/" + nsName + "/core/configmaps/settings-0.yaml"
		Eventually(func() string { return f.file(nsPath) }).ShouldNot(BeEmpty())
		Eventually(func() string { return f.file(cmPath) }).ShouldNot(BeEmpty())
		Expect(f.authorsOf(nsPath)).To(Equal([]string{"alice"}))
		// The ConfigMap may be written before the watch hears of the
		// Namespace (the informer of its namespace then lists it):
		// paired with the webhook's claim, it is alice's all the same.
		Expect(f.authorsOf(cmPath)).To(Equal([]string{"alice"}))
	})

	It("attributes every ConfigMap of five Namespaces alice applies with them to alice", func() {
		f := newFixture(ctx)
		mark := "ns-" + rand.String(6)
		namespaceRule(ctx, f, mark)
		var paths []string
		for i := 0; i < 5; i++ {
			nsName := fmt.Sprintf("e2e-%s-%d", mark, i)
			DeferCleanup(func() {
				_ = k8s.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName}})
			})
			applyNamespaceAs("alice", nsName, mark, 3)
			paths = append(paths, "cluster/_cluster/core/namespaces/"+nsName+".yaml")
			for j := 0; j < 3; j++ {
				paths = append(paths, fmt.Sprintf("cluster/%s/core/configmaps/settings-%d.yaml", nsName, j))
			}
		}
		for _, p := range paths {
			Eventually(func() string { return f.file(p) }).ShouldNot(BeEmpty(), p)
		}
		for _, p := range paths {
			Expect(f.authorsOf(p)).To(Equal([]string{"alice"}), p)
		}
	})
})

// namespaceRule creates a ClusterWatchRule of f's target that records the
// Namespaces labelled reverser.test/mark=mark and their ConfigMaps so
// labelled, and waits until it is active, the watch has synced and the API
// server calls the webhook for Namespaces.
func namespaceRule(ctx context.Context, f fixture, mark string) {
	GinkgoHelper()
	rule := &v1alpha1.ClusterWatchRule{
		ObjectMeta: metav1.ObjectMeta{Name: "namespaces-" + mark},
		Spec: v1alpha1.ClusterWatchRuleSpec{
			TargetRef:         v1alpha1.NamespacedObjectReference{Name: "history", Namespace: f.ns},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"reverser.test/mark": mark}},
			RuleSpec: v1alpha1.RuleSpec{
				Resources: []v1alpha1.ResourceSelector{
					{APIGroups: []string{""}, Resources: []string{"namespaces", "configmaps"}},
				},
				// Narrow: this spec's objects only, whatever else
				// the suite creates meanwhile.
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"reverser.test/mark": mark}},
			},
		},
	}
	Expect(k8s.Create(ctx, rule)).To(Succeed())
	DeferCleanup(func() { _ = k8s.Delete(context.Background(), rule) })
	Eventually(func() string {
		r := &v1alpha1.ClusterWatchRule{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(rule), r); err != nil {
			return err.Error()
		}
		for _, c := range r.Status.Conditions {
			if c.Type == v1alpha1.ReadyCondition {
				return string(c.Status) + "/" + c.Reason
			}
		}
		return "no condition"
	}).Should(Equal("True/RuleActive"))
	Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())
	// The API server reloads webhook configurations asynchronously:
	// wait until a server-side dry run of a Namespace reaches us.
	Eventually(func() bool {
		before := op.AdmissionRequests()
		out, err := kubectl("", "create", "namespace", "e2e-"+mark+"-probe", "--dry-run=server")
		Expect(err).NotTo(HaveOccurred(), out)
		return op.AdmissionRequests() > before
	}).Should(BeTrue())
}

// applyNamespaceAs creates, in one `kubectl apply` as user, the Namespace
// nsName and n ConfigMaps settings-<i> in it, all labelled
// reverser.test/mark=mark.
func applyNamespaceAs(user, nsName, mark string, n int) {
	GinkgoHelper()
	var manifest strings.Builder
	fmt.Fprintf(&manifest, `apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
  labels: {reverser.test/mark: %[2]s}
`, nsName, mark)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&manifest, `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-%[3]d
  namespace: %[1]s
  labels: {reverser.test/mark: %[2]s}
data: {a: b%[3]d}
`, nsName, mark, i)
	}
	cmd := kubectlCmd(user, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest.String())
	out, err := cmd.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
}

// reviewOf renders an AdmissionReview as the API server would send it.
func reviewOf(uid, operation, resource, ns, name, user string, obj, old client.Object) []byte {
	req := map[string]any{
		"uid": uid, "operation": operation, "namespace": ns, "name": name,
		"kind":     map[string]string{"group": "", "version": "v1", "kind": "ConfigMap"},
		"resource": map[string]string{"group": "", "version": "v1", "resource": resource},
		"userInfo": map[string]any{"username": user, "groups": []string{"system:masters", "system:authenticated"}},
	}
	withType := func(o client.Object) client.Object {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			cm = cm.DeepCopy()
			cm.APIVersion, cm.Kind = "v1", "ConfigMap"
			return cm
		}
		return o
	}
	if obj != nil {
		req["object"] = withType(obj)
	}
	if old != nil {
		req["oldObject"] = withType(old)
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return b
}

var (
	reviewClientOnce sync.Once
	reviewClient     *http.Client
)

// postReview posts a review straight to the webhook, as anyone who can
// reach its port can.
func postReview(review []byte) (int, string) {
	reviewClientOnce.Do(func() {
		pool := x509.NewCertPool()
		Expect(pool.AppendCertsFromPEM(caBundle)).To(BeTrue())
		reviewClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 64,
		}}
	})
	resp, err := reviewClient.Post(webhookURL, "application/json", bytes.NewReader(review))
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func memStats() runtime.MemStats {
	// Two collections: what a sync.Pool holds (the webhook recycles
	// request bodies, up to the queue's 64 MiB after a flood) survives the
	// first in the pool's victim cache and is freed by the second without
	// anyone's help. Live is what survives both.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// droppedTotal sums gitops_reverser_admission_dropped_total over reasons.
func droppedTotal() float64 { return metricSum("gitops_reverser_admission_dropped_total") }

// metricSum sums a counter or gauge of the operator's registry over its
// labels.
func metricSum(name string) float64 {
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	var n float64
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			n += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return n
}
