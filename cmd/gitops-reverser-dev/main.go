// Command gitops-reverser-dev is what `make run` starts. With a kubeconfig
// ($KUBECONFIG or ~/.kube/config) it runs the operator against that cluster.
// Without one it starts a local control plane (the pinned etcd and
// kube-apiserver from bin/k8s), a local Git server with a bare repository,
// applies config/samples/, runs the operator and tells the user what to try.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/controller"
	"github.com/gitops-reverser/gitops-reverser/engine/operator"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-reverser-dev:", err)
		os.Exit(1)
	}
}

func run() error {
	local := flag.Bool("local", false, "Always start the local control plane, even when a kubeconfig exists.")
	gitAddr := flag.String("git-addr", defaultGitAddr, "Address of the local Git server (local mode); when the default is taken, a free port.")
	metricsAddr := flag.String("metrics-bind-address", defaultMetricsAddr, "Address of /metrics; \"0\" disables it. In local mode a free port when the default is taken.")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	if !*local {
		if cfg, path, ok := existingKubeconfig(); ok {
			fmt.Printf("gitops-reverser: using the kubeconfig %s (pass -local for a local control plane)\n", path)
			fmt.Println("gitops-reverser: the webhook listens on 127.0.0.1 only, so a remote cluster records changes through the watch, author unknown; deploy the operator into the cluster (make deploy) for attribution")
			wh, err := newLocalWebhook(filepath.Join(controlplane.RepoRoot(), "bin", "local", "certs"))
			if err != nil {
				return err
			}
			wh.manage = false
			return runOperator(ctx, cfg, scheme, *metricsAddr, wh, nil)
		}
	}
	return runLocal(ctx, scheme, *gitAddr, *metricsAddr)
}

// The default addresses of local mode. Another `make run`, or a test of the
// README running `make run` while a developer has one open, may hold
// them: local mode then takes free ports and says which.
const (
	defaultGitAddr     = "127.0.0.1:8418"
	defaultMetricsAddr = ":8080"
)

// addrOr returns addr when it can be listened on or is not the default;
// else 127.0.0.1 with a free port.
func addrOr(addr, def string) (string, error) {
	if addr != def || addr == "0" {
		return addr, nil
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		_ = l.Close()
		return addr, nil
	}
	port, err := controlplane.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// existingKubeconfig loads $KUBECONFIG or ~/.kube/config when present.
func existingKubeconfig() (*rest.Config, string, bool) {
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, "", false
		}
		path = filepath.Join(home, ".kube", "config")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, "", false
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gitops-reverser: ignoring unusable kubeconfig %s: %v\n", path, err)
		return nil, "", false
	}
	return cfg, path, true
}

// localWebhook is the webhook of local mode: served on 127.0.0.1 with a
// certificate made for the run.
type localWebhook struct {
	port    int
	certDir string
	ca      []byte
	// manage makes the operator install its webhook configuration.
	manage bool
}

func newLocalWebhook(certDir string) (*localWebhook, error) {
	wh := &localWebhook{certDir: certDir, manage: true}
	var err error
	if wh.ca, err = controlplane.ServingCert(certDir); err != nil {
		return nil, err
	}
	if wh.port, err = controlplane.FreePort(); err != nil {
		return nil, err
	}
	return wh, nil
}

func runOperator(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, metricsAddr string, wh *localWebhook, onReady func()) error {
	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controller.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: "0",
	}
	opts := operator.Options{WorkDir: filepath.Join(controlplane.RepoRoot(), "bin", "local", "work")}
	mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: wh.port, CertDir: wh.certDir, TLSOpts: []func(*tls.Config){admission.HTTP1Only}})
	if wh.manage {
		opts.WebhookURL = fmt.Sprintf("https://127.0.0.1:%d%s", wh.port, operator.WebhookPath)
		opts.WebhookCABundle = wh.ca
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	op, err := operator.Setup(mgr, opts)
	if err != nil {
		return err
	}
	if onReady != nil {
		k8s := mgr.GetClient()
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			waitReady(ctx, op, k8s)
			if ctx.Err() == nil {
				onReady()
			}
			return nil
		})); err != nil {
			return fmt.Errorf("adding the readiness notice: %w", err)
		}
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}

func runLocal(ctx context.Context, scheme *runtime.Scheme, gitAddr, metricsAddr string) (err error) {
	root := controlplane.RepoRoot()
	stateDir := filepath.Join(root, "bin", "local")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", stateDir, err)
	}
	fmt.Println("gitops-reverser: no kubeconfig found; starting a local control plane and Git server")
	// The Git server's repository is new on every run, so the operator's
	// clone and journal of the last run's repository are dropped too.
	if err := os.RemoveAll(filepath.Join(stateDir, "work")); err != nil {
		return fmt.Errorf("removing the last run's work dir: %w", err)
	}
	if gitAddr, err = addrOr(gitAddr, defaultGitAddr); err != nil {
		return err
	}
	if metricsAddr, err = addrOr(metricsAddr, defaultMetricsAddr); err != nil {
		return err
	}
	env, err := controlplane.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}

	tb := &programTB{dir: stateDir}
	defer tb.cleanup()
	var srv *gitserver.Server
	if err := tb.do(func() {
		srv = gitserver.New(tb, gitserver.WithHTTPAddr(gitAddr))
		srv.CreateBareRepo("cluster-history.git", "main")
	}); err != nil {
		return fmt.Errorf("starting the local Git server: %w", err)
	}

	k8s, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "git-credentials"},
		StringData: map[string]string{"username": srv.Username(), "password": srv.Password()},
	}); err != nil {
		return fmt.Errorf("creating the sample Secret: %w", err)
	}
	kubectl := env.Kubectl()
	apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", filepath.Join(root, "config", "samples"))
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("applying config/samples: %w", err)
	}
	if err := pointSampleAt(ctx, k8s, srv.HTTPURL("cluster-history.git")); err != nil {
		return err
	}

	rel := func(p string) string {
		if r, err := filepath.Rel(mustGetwd(), p); err == nil {
			return r
		}
		return p
	}
	metrics := "off"
	if metricsAddr != "0" {
		host := metricsAddr
		if strings.HasPrefix(host, ":") {
			host = "127.0.0.1" + host
		}
		metrics = "http://" + host + "/metrics"
	}
	// The README's quick start and its test (test/e2e/readme) read these
	// lines: keep the "kubeconfig:" and "repository:" labels. They are
	// printed once the operator records with attribution (waitReady): a
	// change made before would reach Git without its author.
	ready := func() {
		fmt.Printf(`
gitops-reverser is running against a local kube-apiserver %s.
  kubeconfig:  %s
  repository:  %s
  Git server:  %s (user %q, password %q)
  metrics:     %s

Try, in a second terminal in this folder:
  export KUBECONFIG=$PWD/%s PATH=$PWD/%s:$PATH
  kubectl get gittargets,watchrules,clusterwatchrules -A
  kubectl create configmap demo --from-literal=greeting=hello
  git -C %s log --format='%%an: %%s'    (a few seconds later)

Stop with Ctrl-C.
`, env.Version, rel(kubeconfig), rel(srv.RepoPath("cluster-history.git")), srv.HTTPURL("cluster-history.git"),
			srv.Username(), srv.Password(), metrics, rel(kubeconfig), rel(filepath.Dir(kubectl)), rel(srv.RepoPath("cluster-history.git")))
	}

	wh, err := newLocalWebhook(filepath.Join(stateDir, "certs"))
	if err != nil {
		return err
	}
	err = runOperator(ctx, env.Config, scheme, metricsAddr, wh, ready)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// waitReady returns once the operator's informers synced and the API
// server calls its webhook (a server-side dry run reaches it: the API
// server loads webhook configurations asynchronously), or after a minute.
func waitReady(ctx context.Context, op *operator.Operator, k8s client.Client) {
	deadline := time.Now().Add(time.Minute)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if op.Synced(ctx) {
			before := op.AdmissionRequests()
			probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", GenerateName: "gitops-reverser-ready-"}}
			if err := k8s.Create(ctx, probe, client.DryRunAll); err == nil && op.AdmissionRequests() > before {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pointSampleAt sets the sample GitTarget's URL to the local Git server's
// when it differs (the server took a free port).
func pointSampleAt(ctx context.Context, k8s client.Client, url string) error {
	gt := &v1alpha1.GitTarget{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cluster-history"}, gt); err != nil {
		return fmt.Errorf("reading the sample GitTarget: %w", err)
	}
	if gt.Spec.URL == url {
		return nil
	}
	gt.Spec.URL = url
	if err := k8s.Update(ctx, gt); err != nil {
		return fmt.Errorf("pointing the sample GitTarget at %s: %w", url, err)
	}
	return nil
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}

// programTB lets the test Git server run inside a program: a failure
// stops the current do call with an error, and cleanups run when the
// program ends.
type programTB struct {
	dir      string
	n        int
	cleanups []func()
}

// fatal carries a Fatalf out of the failing call to do.
type fatal struct{ err error }

// do runs f and turns a Fatalf inside it into an error.
func (t *programTB) do(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if fe, ok := r.(fatal); ok {
				err = fe.err
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// Helper implements gitserver.TB.
func (t *programTB) Helper() {}

// Fatalf implements gitserver.TB: it stops the current do call.
func (t *programTB) Fatalf(format string, args ...any) {
	panic(fatal{err: fmt.Errorf(format, args...)})
}

// Logf implements gitserver.TB; the local Git server's logs are dropped.
func (t *programTB) Logf(format string, args ...any) {}

// TempDir implements gitserver.TB with a folder under bin/local: "git"
// first (so the repository is at bin/local/git/repos/...), then git-2...
func (t *programTB) TempDir() string {
	t.n++
	dir := filepath.Join(t.dir, "git")
	if t.n > 1 {
		dir = filepath.Join(t.dir, fmt.Sprintf("git-%d", t.n))
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating %s: %v", dir, err)
	}
	return dir
}

// Cleanup implements gitserver.TB.
func (t *programTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *programTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
