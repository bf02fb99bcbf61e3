//go:build benche2e

package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

var (
	runs       = flag.Int("runs", 3, "W450 runs, each with a fresh manager process and namespace")
	objects    = flag.Int("objects", 0, "when > 0, run the start-up variant instead of W450: this many ConfigMaps exist before the manager starts")
	profileDir = flag.String("profile-dir", "", "folder for the manager's CPU profiles (cpu-<run>.pprof); empty uses a temporary folder")
	topN       = flag.Int("top", 25, "entries of each CPU profile to print (go tool pprof -top)")
	managerArg = flag.String("manager-args", "", "further flags for the manager, space separated")
	idle       = flag.Duration("idle-timeout", 0, "the GitTarget's batching.idleTimeout; 0 keeps the CRD default")
	pushEvery  = flag.Duration("push-interval", 0, "the GitTarget's sync.pushInterval; 0 keeps the CRD default")
	cpuProfile = flag.Bool("cpu-profile", true, "run the manager with --cpu-profile and print the profile's top entries (the profiler's symbol tables add to the RSS)")
	heapEvery  = flag.Duration("heap-every", 0, "when > 0, the manager serves pprof and a heap profile is taken this often; the one taken at the highest RSS is kept as heap-<run>.pprof")
	writers    = flag.Int("writers", 0, "when > 0, run the keeps-up workload instead of W450: this many concurrent writers, each its own user, update their own ConfigMaps as fast as the API server accepts")
	duration   = flag.Duration("duration", 60*time.Second, "how long the keeps-up writers write")
	perWriter  = flag.Int("configmaps-per-writer", 5, "ConfigMaps each keeps-up writer owns and updates round robin")
	managerEnv = flag.String("manager-env", "", "further environment variables of the manager (KEY=value, space separated), e.g. GOGC=200 or GOMAXPROCS=4")
	schedTrace = flag.Duration("sched-trace", 0, "when > 0 (keeps-up only), the manager serves pprof and an execution trace this long is taken in the middle of the writes; its scheduler-latency profile (go tool trace -pprof=sched) is printed")
	idleFor    = flag.Duration("idle", 20*time.Second, "after the W450 window: how long to measure the manager's CPU with no writes (ticks, lease renewals, resyncs, metrics); 0 skips it")
	writeRate  = flag.Float64("write-rate", 0, "when > 0, the keeps-up writers together write at most this many updates per second; 0 writes as fast as the API server accepts")
)

const (
	user      = "bench-user"
	branch    = "main"
	basePath  = "cluster"
	w450Count = 200
	w450Del   = 50
)

// bench is the control plane, Git server and clients shared by the runs.
type bench struct {
	t          *testing.T
	env        *controlplane.Env
	k8s        client.Client
	git        *gitserver.Server
	kubeconfig string
	kubectl    e2ekit.Kubectl
	bin        string
	profiles   string
	// pprofAddr is where the last manager started serves pprof, if it does.
	pprofAddr string
}

// TestBenchE2E is `make bench-e2e`: the manager binary as its own
// process against the real kube-apiserver and Git smart-HTTP server, the
// real kubectl as the writing user. It prints figures; it fails only
// when the workload cannot run or the remote never reaches the final
// state.
func TestBenchE2E(t *testing.T) {
	b := setup(t)
	if *objects > 0 {
		b.startup(*objects)
		return
	}
	if *writers > 0 {
		b.keepsUp(*writers, *duration, *perWriter)
		return
	}
	var rows []string
	for i := 1; i <= *runs; i++ {
		rows = append(rows, b.w450(i))
	}
	fmt.Printf("\n| run | load (1/5/15 min) | CPU s | per change | idle CPU per s | per change beyond idle | peak RSS (anon + file at the end) | lag after last write | commits | unknown authors |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Println(r)
	}
}

func setup(t *testing.T) *bench {
	ctrllog.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	bin, err := controlplane.ManagerBinary()
	if err != nil {
		t.Fatal(err)
	}
	env, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := env.WriteKubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	dir := *profileDir
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &bench{
		t: t, env: env, k8s: c, git: gitserver.New(t), kubeconfig: kc,
		kubectl: e2ekit.Kubectl{Bin: env.Kubectl(), Kubeconfig: kc}, bin: bin, profiles: dir,
	}
}

// target creates the namespace (when absent), the repository, the
// credentials Secret, a GitTarget with the CRD's defaults (unless the
// flags set batching or push timing) and a WatchRule recording the
// namespace's ConfigMaps.
func (b *bench) target(ctx context.Context, ns string) string {
	t := b.t
	_ = b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	repo := ns + ".git"
	url, _ := b.git.CreateBareRepo(repo, branch)
	must(t, b.k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git"},
		Data:       map[string][]byte{"username": []byte(b.git.Username()), "password": []byte(b.git.Password())},
	}))
	gt := &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "history"},
		Spec: v1alpha1.GitTargetSpec{
			URL: url, Branch: branch, BasePath: basePath,
			SecretRef: &v1alpha1.LocalObjectReference{Name: "git"},
			Commit:    v1alpha1.CommitSpec{AuthorEmailDomain: "users.test"},
		},
	}
	if *idle > 0 {
		gt.Spec.Batching.IdleTimeout = metav1.Duration{Duration: *idle}
	}
	if *pushEvery > 0 {
		gt.Spec.Sync.PushInterval = metav1.Duration{Duration: *pushEvery}
	}
	must(t, b.k8s.Create(ctx, gt))
	must(t, b.k8s.Create(ctx, &v1alpha1.WatchRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "record"},
		Spec: v1alpha1.WatchRuleSpec{
			TargetRef: v1alpha1.LocalObjectReference{Name: "history"},
			RuleSpec:  v1alpha1.RuleSpec{Resources: []v1alpha1.ResourceSelector{{APIGroups: []string{""}, Resources: []string{"configmaps"}}}},
		},
	}))
	return repo
}

// startManager starts the manager binary with info-level logs and a CPU
// profile written at exit.
func (b *bench) startManager(name string) (*controlplane.ManagerProcess, string) {
	t := b.t
	profile := filepath.Join(b.profiles, "cpu-"+name+".pprof")
	args := []string{"--zap-devel=false", "--zap-log-level=info"}
	if *cpuProfile {
		args = append(args, "--cpu-profile", profile)
	}
	if *managerArg != "" {
		args = append(args, strings.Fields(*managerArg)...)
	}
	var pprofAddr string
	if *heapEvery > 0 || (*schedTrace > 0 && *writers > 0) {
		port, err := controlplane.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
		args = append(args, "--pprof-addr", pprofAddr)
	}
	p, err := controlplane.StartManagerProcess(controlplane.ProcessOptions{
		Kubeconfig: b.kubeconfig, WorkDir: filepath.Join(t.TempDir(), "work"), Args: args,
		Env: strings.Fields(*managerEnv),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	b.pprofAddr = pprofAddr
	if pprofAddr != "" && *heapEvery > 0 {
		go b.sampleHeap(p, pprofAddr, filepath.Join(b.profiles, "heap-"+name+".pprof"))
	}
	return p, profile
}

// sampleHeap takes a heap profile every -heap-every until the manager
// exits and keeps the one taken at the highest RSS.
func (b *bench) sampleHeap(p *controlplane.ManagerProcess, addr, path string) {
	best := 0.0
	for !p.Exited() {
		time.Sleep(*heapEvery)
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
		if err != nil {
			return
		}
		rss := 0.0
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				rss, _ = strconv.ParseFloat(strings.Fields(line)[1], 64)
			}
		}
		if rss <= best {
			continue
		}
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap")
		if err != nil {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && os.WriteFile(path, body, 0o644) == nil {
			best = rss
		}
	}
}

// waitActive waits until the rule is active and the API server calls the
// webhook for ns (a server-side dry run reaches it).
func (b *bench) waitActive(ctx context.Context, ns string, p *controlplane.ManagerProcess) {
	t := b.t
	if err := p.WaitReady(120 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "rule active", func() bool {
		wr := &v1alpha1.WatchRule{}
		if err := b.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "record"}, wr); err != nil {
			return false
		}
		for _, c := range wr.Status.Conditions {
			if c.Type == v1alpha1.ReadyCondition && c.ObservedGeneration == wr.Generation {
				return string(c.Status) == "True" && c.Reason == "RuleActive"
			}
		}
		return false
	})
	waitFor(t, 120*time.Second, "webhook called", func() bool {
		before, _ := e2ekit.Metric(p.MetricsAddr, "gitops_reverser_admission_requests_total")
		_, _ = b.kubectl.Run("", "-n", ns, "create", "configmap", "probe", "--from-literal=a=b", "--dry-run=server")
		after, _ := e2ekit.Metric(p.MetricsAddr, "gitops_reverser_admission_requests_total")
		return after > before
	})
}

// w450 runs the workload once: kubectl create -f of 200 ConfigMaps in one
// file, kubectl replace -f of all 200, kubectl delete of 50, as user.
func (b *bench) w450(run int) string {
	t := b.t
	ctx := context.Background()
	ns := fmt.Sprintf("bench-w450-%d", run)
	repo := b.target(ctx, ns)
	p, profile := b.startManager(ns)
	b.waitActive(ctx, ns, p)
	// Let the start-up reconcile finish before the window opens.
	time.Sleep(2 * time.Second)

	dir := t.TempDir()
	create := filepath.Join(dir, "create.yaml")
	replace := filepath.Join(dir, "replace.yaml")
	must(t, os.WriteFile(create, []byte(configMaps(ns, "value-1")), 0o644))
	must(t, os.WriteFile(replace, []byte(configMaps(ns, "value-2")), 0o644))
	var del []string
	for i := 0; i < w450Del; i++ {
		del = append(del, fmt.Sprintf("cm-%d", i))
	}
	want := map[string]bool{}
	for i := w450Del; i < w450Count; i++ {
		want[fmt.Sprintf("%s/%s/core/configmaps/cm-%d.yaml", basePath, ns, i)] = true
	}
	commits0 := b.commitCount(repo)
	// The profile's first segment is the start-up; the second the window.
	b.segment(p, profile, 1)
	cpu0 := cpuSeconds(t, p.PID())
	load := loadAvg()
	start := time.Now()
	b.kubectlAs(user, "-n", ns, "create", "-f", create)
	b.kubectlAs(user, "-n", ns, "replace", "-f", replace)
	// --wait=false: kubectl returns once the API server has deleted them,
	// instead of polling until they are gone.
	b.kubectlAs(user, append([]string{"-n", ns, "delete", "--wait=false", "configmap"}, del...)...)
	last := time.Now()
	var done time.Time
	var lastHead string
	waitFor(t, 5*time.Minute, "the remote holds the final state", func() bool {
		head := b.head(repo)
		if head == "" || head == lastHead {
			return false
		}
		lastHead = head
		if b.finalState(repo, ns, want) {
			done = time.Now()
			return true
		}
		return false
	})
	cpu1 := cpuSeconds(t, p.PID())
	b.segment(p, profile, 2)
	hwm := peakRSS(t, p.PID())
	anon, file := procStatusMB(t, p.PID(), "RssAnon"), procStatusMB(t, p.PID(), "RssFile")
	fmt.Printf("run %d: %s\n", run, rssSplit(t, p.PID()))
	commits := b.commitCount(repo) - commits0
	unknown, touches := b.unknownShare(repo, commits)
	// The background: the same process with no writes (the third
	// segment of the profile).
	idleRate := 0.0
	if *idleFor > 0 {
		i0 := cpuSeconds(t, p.PID())
		time.Sleep(*idleFor)
		idleRate = (cpuSeconds(t, p.PID()) - i0) / idleFor.Seconds()
		b.segment(p, profile, 3)
	}
	must(t, p.Stop(60*time.Second))
	cpu := cpu1 - cpu0
	changes := 2*w450Count + w450Del
	window := done.Sub(start).Seconds()
	fixed := idleRate * window
	beyond := (cpu - fixed) * 1000 / float64(changes)
	fmt.Printf("run %d: writes took %.1fs; lag after the last write %.2fs; CPU %.2fs over the %.1fs window (%.2f ms per change of %d); idle CPU %.1f ms/s (%.2fs over the window; %.2f ms per change beyond it); peak RSS %.1f MB; %d commits; unknown authors on %d of the %d files changed by those commits; load %s\n",
		run, last.Sub(start).Seconds(), done.Sub(last).Seconds(), cpu, window, cpu*1000/float64(changes), changes, idleRate*1000, fixed, beyond, hwm, commits, unknown, touches, load)
	b.printProfile(profile+".2", "the write window", *topN)
	b.printProfile(profile+".2", "the write window, cumulative", *topN, "-cum")
	if *idleFor > 0 {
		b.printProfile(profile+".3", fmt.Sprintf("%s with no writes", *idleFor), 15)
	}
	return fmt.Sprintf("| %d | %s | %.2f | %.2f ms | %.1f ms/s | %.2f ms | %.1f MB (%.1f + %.1f) | %.2f s | %d | %.1f %% |",
		run, load, cpu, cpu*1000/float64(changes), idleRate*1000, beyond, hwm, anon, file, done.Sub(last).Seconds(), commits, 100*float64(unknown)/float64(max(touches, 1)))
}

// segment ends the manager's current CPU profile segment with SIGUSR1 and
// waits until it is written as profile.n (see --cpu-profile).
func (b *bench) segment(p *controlplane.ManagerProcess, profile string, n int) {
	if !*cpuProfile {
		return
	}
	must(b.t, syscall.Kill(p.PID(), syscall.SIGUSR1))
	name := profile + "." + strconv.Itoa(n)
	waitFor(b.t, time.Minute, "CPU profile segment "+name, func() bool {
		_, err := os.Stat(name)
		return err == nil
	})
}

// startup creates n ConfigMaps, then the target, then starts the manager
// and times the first commit and every file on the remote.
func (b *bench) startup(n int) {
	t := b.t
	ctx := context.Background()
	ns := "bench-startup"
	must(t, b.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	fmt.Printf("creating %d ConfigMaps...\n", n)
	createMany(t, b.k8s, ns, n)
	repo := b.target(ctx, ns)
	load := loadAvg()
	// The Git server's new repository may hold a first commit already.
	head0 := b.head(repo)
	start := time.Now()
	p, profile := b.startManager(ns)
	var first, all time.Time
	prefix := basePath + "/" + ns + "/core/configmaps/"
	lastHead := head0
	waitFor(t, 15*time.Minute, "every file on the remote", func() bool {
		head := b.head(repo)
		if head == "" || head == lastHead {
			return false
		}
		lastHead = head
		if first.IsZero() {
			first = time.Now()
		}
		count := 0
		for _, f := range b.git.ListFiles(repo, branch) {
			if strings.HasPrefix(f, prefix) {
				count++
			}
		}
		if count == n {
			all = time.Now()
			return true
		}
		return false
	})
	cpu := cpuSeconds(t, p.PID())
	hwm := peakRSS(t, p.PID())
	fmt.Println(rssSplit(t, p.PID()))
	commits := b.commitCount(repo)
	if head0 != "" {
		commits--
	}
	must(t, p.Stop(60*time.Second))
	fmt.Printf("\n| objects | load (1/5/15 min) | first commit on the remote | every file on the remote | CPU s | peak RSS | commits |\n|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %s | %.1f s | %.1f s | %.1f | %.0f MB | %d |\n", n, load, first.Sub(start).Seconds(), all.Sub(start).Seconds(), cpu, hwm, commits)
	b.printProfile(profile, "whole process life", *topN)
}

// createMany creates n ConfigMaps in ns with 8 writers.
func createMany(t *testing.T, c client.Client, ns string, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)},
					Data:       map[string]string{"v": "value-1"},
				}
				if err := c.Create(context.Background(), cm); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func configMaps(ns, value string) string {
	var s strings.Builder
	s.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := 0; i < w450Count; i++ {
		fmt.Fprintf(&s, "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-%d\n    namespace: %s\n  data:\n    v: %s\n", i, ns, value)
	}
	return s.String()
}

// finalState reports whether the branch holds exactly the wanted files,
// each with the replaced value.
func (b *bench) finalState(repo, ns string, want map[string]bool) bool {
	dir := b.git.RepoPath(repo)
	out, err := git(dir, "ls-tree", "-r", "--name-only", "refs/heads/"+branch, "--", basePath+"/"+ns+"/")
	if err != nil {
		return false
	}
	files := strings.Fields(out)
	if len(files) != len(want) {
		return false
	}
	for _, f := range files {
		if !want[f] {
			return false
		}
	}
	out, err = git(dir, "grep", "-l", "-F", "value-2", "refs/heads/"+branch, "--", basePath+"/"+ns+"/")
	if err != nil {
		return false
	}
	return len(strings.Fields(out)) == len(want)
}

func (b *bench) head(repo string) string {
	h, _ := b.git.Head(repo, branch)
	return h
}

func (b *bench) commitCount(repo string) int {
	out, err := git(b.git.RepoPath(repo), "rev-list", "--count", "refs/heads/"+branch)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

// unknownShare counts the file changes of the last n commits whose
// commit's author is "unknown", and all of them.
func (b *bench) unknownShare(repo string, n int) (unknown, total int) {
	if n <= 0 {
		return 0, 0
	}
	out, err := git(b.git.RepoPath(repo), "log", "-n", strconv.Itoa(n), "--format=%x1e%an", "--name-only", "refs/heads/"+branch)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, rec := range strings.Split(out, "\x1e") {
		lines := strings.Fields(rec)
		if len(lines) == 0 {
			continue
		}
		// The author name is one word here (bench-user or unknown).
		files := len(lines) - 1
		total += files
		if lines[0] == "unknown" {
			unknown += files
		}
	}
	return unknown, total
}

func (b *bench) printProfile(profile, what string, n int, extra ...string) {
	if !*cpuProfile {
		return
	}
	args := append([]string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(n)}, extra...)
	out, err := exec.Command("go", append(args, b.bin, profile)...).CombinedOutput()
	if err != nil {
		fmt.Printf("pprof %s: %v\n", profile, err)
	}
	fmt.Printf("CPU profile %s (%s):\n%s\n", profile, what, out)
}

// kubectlAs runs the real kubectl as user and fails on an error.
func (b *bench) kubectlAs(user string, args ...string) {
	if out, err := b.kubectl.Run(user, args...); err != nil {
		b.t.Fatalf("%v: %s", err, out)
	}
}

func git(dir string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"--git-dir", dir}, args...)...).Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// cpuSeconds is user+sys time of pid from /proc/<pid>/stat.
func cpuSeconds(t *testing.T, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces) in parentheses.
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// peakRSS is VmHWM of pid in MB.
func peakRSS(t *testing.T, pid int) float64 { return procStatusMB(t, pid, "VmHWM") }

// procStatusMB reads a kB field of /proc/<pid>/status in MB.
func procStatusMB(t *testing.T, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// rssSplit says how much of the current RSS is anonymous memory (heap,
// stacks) and how much is mapped files (the binary's pages).
func rssSplit(t *testing.T, pid int) string {
	return fmt.Sprintf("RSS now %.1f MB = anon %.1f + file %.1f",
		procStatusMB(t, pid, "VmRSS"), procStatusMB(t, pid, "RssAnon"), procStatusMB(t, pid, "RssFile"))
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:3], " ")
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
