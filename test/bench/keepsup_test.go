//go:build benche2e

package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

// keepsUp is the "Keeps up" workload: -writers concurrent writers, each
// its own user, update their own ConfigMaps as fast as the API server
// accepts for -duration, through the real API server with the webhook on.
func (b *bench) keepsUp(n int, d time.Duration, perWriter int) {
	t := b.t
	ctx := context.Background()
	ns := "bench-keepsup"
	repo := b.target(ctx, ns)
	p, profile := b.startManager(ns)
	b.waitActive(ctx, ns, p)
	time.Sleep(2 * time.Second)

	admin, err := kubernetes.NewForConfig(b.env.Config)
	must(t, err)
	hist0 := b.apiserverWebhookHistogram(ctx, admin)
	handler0 := managerHistogram(p.MetricsAddr, "gitops_reverser_admission_duration_seconds")
	gc0 := gcPauses(p.MetricsAddr)
	dropped0, _ := e2ekit.Metric(p.MetricsAddr, "gitops_reverser_admission_dropped_total")
	commits0 := b.commitCount(repo)
	cpu0 := cpuSeconds(t, p.PID())
	load := loadAvg()

	// The probe answers the question "how long does the webhook take to
	// answer" from outside the API server: a dry-run review of a
	// ConfigMap every 10 ms over one kept-alive TLS connection, as the API
	// server sends them (the webhook counts dry runs and keeps nothing).
	stopProbe := make(chan struct{})
	probeDone := make(chan []time.Duration)
	go func() { probeDone <- probeWebhook(p.WebhookURL, ns, stopProbe) }()

	traceDone := make(chan string, 1)
	if *schedTrace > 0 && b.pprofAddr != "" {
		go func() { traceDone <- b.takeTrace(d) }()
	} else {
		traceDone <- ""
	}

	var writes, failures atomic.Int64
	final := make([]map[string]string, n)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			final[w] = writer(ctx, b.env.Config, ns, w, perWriter, deadline, &writes, &failures)
		}(w)
	}
	wg.Wait()
	last := time.Now()
	close(stopProbe)
	probe := <-probeDone
	handler1 := managerHistogram(p.MetricsAddr, "gitops_reverser_admission_duration_seconds")
	gc1 := gcPauses(p.MetricsAddr)
	want := map[string]string{}
	for _, m := range final {
		for k, v := range m {
			want[k] = v
		}
	}
	// The cluster's final state must be what the writers last wrote.
	list, err := admin.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	must(t, err)
	clusterMismatch := 0
	inCluster := 0
	for _, cm := range list.Items {
		if v, ok := want[cm.Name]; ok {
			inCluster++
			if cm.Data["v"] != v {
				clusterMismatch++
			}
		}
	}

	var done time.Time
	var lastHead string
	mismatch := len(want)
	deadlineRemote := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadlineRemote) {
		head := b.head(repo)
		if head != "" && head != lastHead {
			lastHead = head
			mismatch = b.remoteMismatch(repo, ns, want)
			if mismatch == 0 {
				done = time.Now()
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpu := cpuSeconds(t, p.PID()) - cpu0
	hwm := peakRSS(t, p.PID())
	hist1 := b.apiserverWebhookHistogram(ctx, admin)
	dropped1, _ := e2ekit.Metric(p.MetricsAddr, "gitops_reverser_admission_dropped_total")
	commits := b.commitCount(repo) - commits0
	unknown, touches := b.unknownShare(repo, commits)
	must(t, p.Stop(60*time.Second))

	lag := "never (5 min)"
	if !done.IsZero() {
		lag = fmt.Sprintf("%.2f s", done.Sub(last).Seconds())
	}
	w := writes.Load()
	hp50, hp99, hcount := histQuantiles(hist0, hist1)
	pp50, pp99 := quantile(probe, 0.50), quantile(probe, 0.99)
	if *writeRate > 0 {
		fmt.Printf("keeps up: writers paced to %.0f updates per second together\n", *writeRate)
	}
	fmt.Printf("keeps up: %d writers x %d ConfigMaps for %s: %d writes (%.0f/s), %d failed; cluster: %d of %d ConfigMaps present, %d not the last written value\n",
		n, perWriter, d, w, float64(w)/last.Sub(start).Seconds(), failures.Load(), inCluster, len(want), clusterMismatch)
	fmt.Printf("keeps up: lag after the last write until the remote holds every final value: %s; ConfigMaps whose remote value differs from the cluster's: %d of %d\n", lag, mismatch, len(want))
	fmt.Printf("keeps up: %d commits; unknown authors on %d of %d file changes; reviews dropped by the webhook: %.0f\n", commits, unknown, touches, dropped1-dropped0)
	fmt.Printf("keeps up: manager CPU %.2f s (%.3f ms per write); peak RSS %.1f MB; load %s\n", cpu, cpu*1000/float64(max(w, 1)), hwm, load)
	fmt.Printf("keeps up: webhook answer seen by the API server (apiserver_admission_webhook_admission_duration_seconds, %d calls; bucket upper bounds): p50 <= %s, p99 <= %s; buckets: %s\n",
		hcount, hp50, hp99, histDelta(hist0, hist1))
	fmt.Printf("keeps up: webhook answer seen by a direct TLS probe (%d dry-run reviews, 10 ms apart): p50 %s, p99 %s, max %s\n",
		len(probe), pp50, pp99, quantile(probe, 1))
	mp50, mp99, mcount := histQuantiles(handler0, handler1)
	fmt.Printf("keeps up: webhook handler in the manager (gitops_reverser_admission_duration_seconds, %d answers; bucket upper bounds): p50 <= %s, p99 <= %s; buckets: %s\n",
		mcount, mp50, mp99, histDelta(handler0, handler1))
	fmt.Printf("keeps up: manager GC during the writes: %.0f cycles, stop-the-world pauses %.1f ms in total, longest recent pause %.2f ms\n",
		gc1.count-gc0.count, 1000*(gc1.sum-gc0.sum), 1000*gc1.max)
	fmt.Printf("\n| writers | duration | load (1/5/15 min) | writes | lag after last write | lost | unknown authors | CPU s | peak RSS | webhook p50 / p99 (API server buckets) | webhook p50 / p99 (probe) | handler p50 / p99 (manager buckets) | GC cycles (pauses) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %s | %s | %d | %s | %d | %.1f %% | %.1f | %.1f MB | <= %s / <= %s | %s / %s | <= %s / <= %s | %.0f (%.1f ms) |\n",
		n, d, load, w, lag, mismatch, 100*float64(unknown)/float64(max(touches, 1)), cpu, hwm, hp50, hp99, pp50, pp99,
		mp50, mp99, gc1.count-gc0.count, 1000*(gc1.sum-gc0.sum))
	b.printProfile(profile, "whole process life", *topN)
	b.printSchedLatency(<-traceDone)
	if mismatch != 0 {
		t.Errorf("%d ConfigMaps never reached their final value on the remote", mismatch)
	}
}

// writer creates perWriter ConfigMaps as user writer-<w>, then updates
// them round robin until deadline. It returns each ConfigMap's last
// written value.
func writer(ctx context.Context, admin *rest.Config, ns string, w, perWriter int, deadline time.Time, writes, failures *atomic.Int64) map[string]string {
	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("writer-%d", w), Groups: []string{"system:masters"}}
	cfg.QPS, cfg.Burst = 1e6, 1e6
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		failures.Add(1)
		return nil
	}
	final := map[string]string{}
	cms := make([]*corev1.ConfigMap, perWriter)
	for i := range cms {
		name := fmt.Sprintf("w%d-c%d", w, i)
		v := name + "-0"
		cm, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": v},
		}, metav1.CreateOptions{})
		if err != nil {
			failures.Add(1)
			continue
		}
		writes.Add(1)
		cms[i], final[name] = cm, v
	}
	var pace <-chan time.Time
	if *writeRate > 0 {
		tick := time.NewTicker(time.Duration(float64(*writers) / *writeRate * float64(time.Second)))
		defer tick.Stop()
		pace = tick.C
	}
	for seq := 1; time.Now().Before(deadline); seq++ {
		for i, cm := range cms {
			if pace != nil {
				<-pace
			}
			if cm == nil || !time.Now().Before(deadline) {
				continue
			}
			v := cm.Name + "-" + strconv.Itoa(seq)
			next := cm.DeepCopy()
			next.Data["v"] = v
			got, err := c.CoreV1().ConfigMaps(ns).Update(ctx, next, metav1.UpdateOptions{})
			if err != nil {
				failures.Add(1)
				// Reread to carry on from the stored version.
				if cur, gerr := c.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{}); gerr == nil {
					cms[i], final[cm.Name] = cur, cur.Data["v"]
				}
				continue
			}
			writes.Add(1)
			cms[i], final[cm.Name] = got, v
		}
	}
	return final
}

// remoteMismatch counts the wanted ConfigMaps whose file on the branch
// is missing or holds another value.
func (b *bench) remoteMismatch(repo, ns string, want map[string]string) int {
	prefix := basePath + "/" + ns + "/core/configmaps/"
	out, err := git(b.git.RepoPath(repo), "grep", "-F", "v: ", "refs/heads/"+branch, "--", prefix)
	if err != nil {
		return len(want)
	}
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		// refs/heads/main:cluster/ns/core/configmaps/w0-c0.yaml:  v: w0-c0-12
		rest, ok := strings.CutPrefix(line, "refs/heads/"+branch+":"+prefix)
		if !ok {
			continue
		}
		file, val, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		if v, ok := strings.CutPrefix(val, "v: "); ok {
			got[strings.TrimSuffix(file, ".yaml")] = strings.Trim(v, `"'`)
		}
	}
	n := 0
	for k, v := range want {
		if got[k] != v {
			n++
		}
	}
	return n
}

// probeWebhook sends a dry-run AdmissionReview to url every 10 ms until
// stop and returns the answer times.
func probeWebhook(url, ns string, stop <-chan struct{}) []time.Duration {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The manager's certificate is self-signed; the probe times the
		// answer, it does not check who gives it.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // bench probe of a local self-signed server
		ForceAttemptHTTP2: true,
	}}
	cm, _ := json.Marshal(&corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"},
		Data:       map[string]string{"v": "probe"},
	})
	dry := true
	var out []time.Duration
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out
		case <-tick.C:
		}
		review := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID:       types.UID(fmt.Sprintf("probe-%d", i)),
				Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
				Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
				Namespace: ns, Name: "probe", Operation: admissionv1.Create,
				Object: runtime.RawExtension{Raw: cm}, DryRun: &dry,
			},
		}
		body, _ := json.Marshal(review)
		t0 := time.Now()
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			continue
		}
		var ans admissionv1.AdmissionReview
		err = json.NewDecoder(resp.Body).Decode(&ans)
		_ = resp.Body.Close()
		if err == nil && ans.Response != nil {
			out = append(out, time.Since(t0))
		}
	}
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)].Round(10 * time.Microsecond)
}

// takeTrace takes an execution trace of -sched-trace from the manager in
// the middle of a window of length d that starts now; it returns the
// file, or "" when it could not.
func (b *bench) takeTrace(d time.Duration) string {
	time.Sleep(max(d/2-*schedTrace/2, 0))
	c := http.Client{Timeout: *schedTrace + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/trace?seconds=%d", b.pprofAddr, int(schedTrace.Seconds())))
	if err != nil {
		fmt.Printf("trace: %v\n", err)
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	path := filepath.Join(b.profiles, "trace-keepsup.out")
	f, err := os.Create(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(f, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		fmt.Printf("trace: %v (%s)\n", err, resp.Status)
		return ""
	}
	return path
}

// printSchedLatency prints the scheduler-latency profile of a trace
// (where runnable goroutines waited for a CPU) and its synchronization
// profile (where goroutines blocked on a mutex or channel).
func (b *bench) printSchedLatency(trace string) {
	if trace == "" {
		return
	}
	for _, kind := range []string{"sched", "sync"} {
		prof := strings.TrimSuffix(trace, ".out") + "-" + kind + ".pprof"
		out, err := exec.Command("go", "tool", "trace", "-pprof="+kind, trace).Output()
		if err != nil || os.WriteFile(prof, out, 0o644) != nil {
			fmt.Printf("go tool trace -pprof=%s %s: %v\n", kind, trace, err)
			continue
		}
		top, _ := exec.Command("go", "tool", "pprof", "-top", "-nodecount="+strconv.Itoa(*topN), prof).CombinedOutput()
		fmt.Printf("%s profile of the manager's goroutines over %s of the writes (%s, from %s):\n%s\n", kind, *schedTrace, prof, trace, top)
	}
}

// managerHistogram scrapes a histogram of the manager's /metrics (cumulative
// counts by le, summed over label sets); nil when it cannot.
func managerHistogram(addr, name string) map[float64]float64 {
	raw, err := scrapeText(addr)
	if err != nil {
		return nil
	}
	return parseHistogram(raw, name)
}

// gcStats are the manager's Go collector's stop-the-world GC pauses.
type gcStats struct{ count, sum, max float64 }

// gcPauses reads go_gc_duration_seconds from the manager's /metrics.
func gcPauses(addr string) gcStats {
	raw, err := scrapeText(addr)
	if err != nil {
		return gcStats{}
	}
	var g gcStats
	for _, line := range strings.Split(raw, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_gc_duration_seconds_count":
			g.count = v
		case "go_gc_duration_seconds_sum":
			g.sum = v
		case `go_gc_duration_seconds{quantile="1"}`:
			g.max = v
		}
	}
	return g
}

func scrapeText(addr string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return string(raw), err
}

// parseHistogram sums the buckets of the histogram name in a Prometheus
// text exposition (cumulative counts by le) over all label sets.
func parseHistogram(raw, name string) map[float64]float64 {
	h := map[float64]float64{}
	for _, line := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		if i < 0 {
			continue
		}
		leStr := line[i+4:]
		leStr = leStr[:strings.IndexByte(leStr, '"')]
		le := math.Inf(1)
		if leStr != "+Inf" {
			le, _ = strconv.ParseFloat(leStr, 64)
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		h[le] += v
	}
	return h
}

// apiserverWebhookHistogram scrapes the kube-apiserver's /metrics as the
// administrator and sums apiserver_admission_webhook_admission_duration_seconds
// buckets (cumulative counts by le) over all label sets.
func (b *bench) apiserverWebhookHistogram(ctx context.Context, c *kubernetes.Clientset) map[float64]float64 {
	raw, err := c.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.t.Logf("scraping the API server: %v", err)
		return nil
	}
	return parseHistogram(string(raw), "apiserver_admission_webhook_admission_duration_seconds")
}

func sortedLe(h map[float64]float64) []float64 {
	var les []float64
	for le := range h {
		les = append(les, le)
	}
	sort.Float64s(les)
	return les
}

// histQuantiles gives the upper bounds of the buckets holding the p50 and
// p99 of the calls between two scrapes.
func histQuantiles(h0, h1 map[float64]float64) (p50, p99 string, count int) {
	les := sortedLe(h1)
	if len(les) == 0 {
		return "?", "?", 0
	}
	total := h1[math.Inf(1)] - h0[math.Inf(1)]
	at := func(q float64) string {
		for _, le := range les {
			if h1[le]-h0[le] >= q*total {
				if math.IsInf(le, 1) {
					return "+Inf"
				}
				return (time.Duration(le * float64(time.Second))).String()
			}
		}
		return "?"
	}
	return at(0.50), at(0.99), int(total)
}

// histDelta prints the cumulative bucket counts between two scrapes.
func histDelta(h0, h1 map[float64]float64) string {
	var parts []string
	for _, le := range sortedLe(h1) {
		parts = append(parts, fmt.Sprintf("<=%g:%.0f", le, h1[le]-h0[le]))
	}
	return strings.Join(parts, " ")
}
