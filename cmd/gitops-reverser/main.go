// Command gitops-reverser is the operator: it runs the GitTarget and rule
// controllers, the admission webhook, and the metrics and health endpoints.
// Run it with --help for its flags.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	runtimepprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/batch"
	"github.com/gitops-reverser/gitops-reverser/engine/controller"
	"github.com/gitops-reverser/gitops-reverser/engine/operator"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

// envPod is $POD_NAMESPACE/$POD_NAME, "" unless both are set.
func envPod() string {
	ns, name := os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME")
	if ns == "" || name == "" {
		return ""
	}
	return ns + "/" + name
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "gitops-reverser:", err)
		os.Exit(1)
	}
}

// run parses args and runs the manager until a signal stops it. Flag and
// certificate errors return before anything connects to the cluster.
func run(args []string) error {
	var opts operator.Options
	var metricsAddr, probeAddr, certDir string
	var webhookPort int
	var leaderElect bool
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	config.RegisterFlags(fs) // --kubeconfig
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint (/metrics); \"0\" disables it.")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.IntVar(&webhookPort, "webhook-port", 9443, "Port of the admission webhook server (HTTPS).")
	fs.StringVar(&certDir, "webhook-cert-dir", "", "Folder with tls.crt and tls.key (and ca.crt, the CA that signed them) for the webhook server, e.g. a cert-manager Secret; empty uses <work-dir>/webhook-certs. When it holds no certificate, a self-signed one and its CA are made at start (fine for one replica).")
	fs.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader with a Lease so only one replica watches and writes Git.")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease; empty uses the pod's namespace.")
	var leaseDuration, renewDeadline, retryPeriod time.Duration
	fs.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long followers wait after the leader's last renewal before one takes over: the longest a hand-over after a crash takes (a SIGTERM releases the Lease at once).")
	fs.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader retries renewing the Lease before it gives up leading (and exits); less than the lease duration.")
	fs.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second, "How often candidates try to acquire or renew the Lease.")
	var leaderPod string
	fs.StringVar(&leaderPod, "leader-pod", envPod(), "namespace/name of this replica's pod; the leader labels it "+operator.LeaderLabel+"=true (and removes the label from other pods), so that a webhook Service that selects the label reaches the leader only. Default: $POD_NAMESPACE/$POD_NAME when both are set (downward API); empty disables it.")
	var certSecret string
	var certValidity time.Duration
	fs.StringVar(&certSecret, "webhook-cert-secret", "", "namespace/name of a Secret in which the operator keeps the webhook's CA and serving certificate, shared by all replicas: created when missing, rotated by the leader with a third of --webhook-cert-validity left, read by every replica every 30 seconds. Replaces the certificate in --webhook-cert-dir (which receives a copy).")
	fs.DurationVar(&certValidity, "webhook-cert-validity", admission.DefaultCertValidity, "Validity of the CA and serving certificate made for --webhook-cert-secret.")
	fs.StringVar(&opts.WebhookInjectCAFrom, "webhook-inject-ca-from", "", "namespace/name of a cert-manager Certificate whose CA cert-manager's CA injector writes into the webhook configuration's caBundle (annotation cert-manager.io/inject-ca-from); the operator then keeps the injected caBundle. Mount the Certificate's Secret as --webhook-cert-dir.")
	fs.StringVar(&opts.WorkDir, "work-dir", os.TempDir()+"/gitops-reverser", "Folder for local Git clones and the journal of changes not yet committed (keep it on a persistent volume to survive a restart of the pod).")
	fs.DurationVar(&opts.ReconcileInterval, "reconcile-interval", batch.DefaultReconcileInterval, "How often each Git target is fully reconciled (its files made equal to what its rules select); it also runs at start and when a rule or target changes.")
	fs.DurationVar(&opts.GitTimeout, "git-timeout", 30*time.Second, "Bound on every network call to a Git remote (ls-remote, fetch, push): a remote that does not answer in time is retried later, delaying only its own GitTarget.")
	var webhookService, webhookCAFile string
	fs.StringVar(&opts.WebhookURL, "webhook-url", "", "URL the API server calls for the capture webhook (outside a cluster); the operator then manages the ValidatingWebhookConfiguration.")
	fs.StringVar(&webhookService, "webhook-service", "", "namespace/name of the Service in front of the webhook (in a cluster); the operator then manages the ValidatingWebhookConfiguration.")
	fs.StringVar(&webhookCAFile, "webhook-ca-file", "", "PEM file with the CA that signed the webhook's serving certificate (the configuration's caBundle); empty uses ca.crt in the cert dir. Read again at every sync.")
	var clientCAFile, clientCN string
	fs.StringVar(&clientCAFile, "webhook-client-ca-file", "", "PEM file with the CA of the client certificate the API server presents to the webhook (--admission-control-config-file, see docs/threat-model.md); when set, callers without a certificate from it fail the TLS handshake.")
	fs.StringVar(&clientCN, "webhook-client-cn", "", "Common name the webhook client certificate must carry (with --webhook-client-ca-file).")
	fs.StringVar(&opts.WebhookConfigurationName, "webhook-configuration-name", "gitops-reverser", "Name of the ValidatingWebhookConfiguration the operator manages.")
	var cpuProfile string
	fs.StringVar(&cpuProfile, "cpu-profile", "", "Write a CPU profile (pprof) of the whole run to this file when the manager stops (SIGTERM); empty writes none. A SIGUSR1 ends a segment: the profile so far is written to <file>.1 (then .2, ...) and a new one starts, so that a benchmark can profile just its window. For benchmarks (make bench-e2e).")
	var pprofAddr string
	fs.StringVar(&pprofAddr, "pprof-addr", "", "Serve net/http/pprof (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty serves none. For profiling; keep it on loopback.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nRecords cluster changes selected by WatchRules as commits in Git.\nIt uses the current kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster).\n\nFlags:\n", os.Args[0])
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if pprofAddr != "" {
		servePprof(pprofAddr)
	}
	// The webhook's http.Server writes to the standard logger (controller-
	// runtime has no option for its ErrorLog): count refused TLS handshakes
	// and keep the lines structured.
	log.SetFlags(0)
	log.SetOutput(admission.StdlibLog{Log: ctrl.Log.WithName("webhook-server")})
	if webhookService != "" {
		ns, name, ok := strings.Cut(webhookService, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("--webhook-service %q: want namespace/name", webhookService)
		}
		path := operator.WebhookPath
		port := int32(443)
		opts.WebhookService = &admissionregistrationv1.ServiceReference{Namespace: ns, Name: name, Path: &path, Port: &port}
	}
	if leaderPod != "" {
		ns, name, ok := strings.Cut(leaderPod, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("--leader-pod %q: want namespace/name", leaderPod)
		}
		opts.LeaderPod = types.NamespacedName{Namespace: ns, Name: name}
	}
	owned := certDir == ""
	if owned {
		certDir = filepath.Join(opts.WorkDir, "webhook-certs")
	}
	host := admission.WebhookHost(opts.WebhookURL, opts.WebhookService)
	hosts := admission.ServingHosts(opts.WebhookURL, opts.WebhookService)
	setupLog := ctrl.Log.WithName("setup")
	if limit, ok := containerMemoryLimit(); ok && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit / 10 * 9)
		setupLog.Info("Go memory limit set to 90% of the container's", "containerLimitBytes", limit)
	}
	// OTEL_* configure the export of traces and metrics (docs/metrics.md).
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Log: ctrl.Log.WithName("telemetry")})
	if err != nil {
		return fmt.Errorf("setting up OpenTelemetry: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			setupLog.Error(err, "flushing OpenTelemetry")
		}
	}()
	webhookOpts := webhook.Options{Port: webhookPort, CertDir: certDir, TLSOpts: []func(*tls.Config){admission.HTTP1Only}}
	var secret types.NamespacedName
	if certSecret != "" {
		ns, name, ok := strings.Cut(certSecret, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("--webhook-cert-secret %q: want namespace/name", certSecret)
		}
		if webhookCAFile != "" {
			return errors.New("--webhook-cert-secret keeps its own CA: drop --webhook-ca-file")
		}
		secret = types.NamespacedName{Namespace: ns, Name: name}
	} else {
		cert, err := admission.PrepareServingCert(admission.ServingCertOptions{
			Dir: certDir, Owned: owned, Hosts: hosts, Host: host, CAFile: webhookCAFile,
		})
		if err != nil {
			return fmt.Errorf("preparing the webhook certificate: %w", err)
		}
		setupLog.Info("webhook certificate", "result", string(cert.Origin), "dir", certDir, "caFile", cert.CAFile, "host", host)
		if cert.Mismatch != nil {
			// Reported again at every sync and by /readyz; the operator runs
			// on, since the watch still records every change (as unknown).
			setupLog.Error(cert.Mismatch, "the webhook certificate does not verify against its CA", "dir", certDir, "caFile", cert.CAFile)
		}
		opts.WebhookCAFile, opts.WebhookCertFile = cert.CAFile, cert.CertFile
	}
	switch {
	case clientCAFile != "":
		clientAuth, err := admission.ClientAuth(clientCAFile, clientCN)
		if err != nil {
			return fmt.Errorf("--webhook-client-ca-file: %w", err)
		}
		webhookOpts.TLSOpts = append(webhookOpts.TLSOpts, clientAuth)
		setupLog.Info("the webhook hears only clients with a certificate from the client CA", "clientCAFile", clientCAFile, "commonName", clientCN)
	case clientCN != "":
		return errors.New("--webhook-client-cn needs --webhook-client-ca-file")
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	// The API server gzips watch streams and lists for clients that accept
	// it; inflating them was a tenth of the manager's CPU (make bench-e2e),
	// and the link to the API server is local to the cluster.
	cfg.DisableCompression = true
	if secret.Name != "" {
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("creating a client for the webhook certificate Secret: %w", err)
		}
		rotator, err := admission.NewCertRotator(admission.CertRotatorOptions{
			Client: c, Secret: secret, Dir: certDir, Hosts: hosts, Host: host, Validity: certValidity,
			Log: ctrl.Log.WithName("webhook-cert"),
		})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = rotator.Ensure(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("preparing the webhook certificate: %w", err)
		}
		setupLog.Info("webhook certificate", "result", "shared Secret", "secret", secret, "dir", certDir, "host", host)
		opts.CertRotator = rotator
		opts.WebhookCAFile, opts.WebhookCertFile = rotator.CAFile(), rotator.CertFile()
		webhookOpts.TLSOpts = append(webhookOpts.TLSOpts, rotator.TLSOption)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controller.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		WebhookServer:           webhook.NewServer(webhookOpts),
		LeaderElection:          leaderElect,
		LeaderElectionID:        "gitops-reverser-leader",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// A SIGTERM (rollout) hands over at once instead of after the
		// lease duration: run returns right after the manager stops.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	op, err := operator.Setup(mgr, opts)
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the ready check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook-ca", op.WebhookCACheck); err != nil {
		return fmt.Errorf("adding the webhook CA check: %w", err)
	}
	// Ready means: the serving certificate is valid now and served, and
	// the informers synced. A GitTarget's remote is its own signal (its
	// conditions, gitops_reverser_target_reachable), never readiness.
	if err := mgr.AddReadyzCheck("webhook-cert", admission.ServingCertCheck(opts.WebhookCertFile, nil)); err != nil {
		return fmt.Errorf("adding the webhook certificate check: %w", err)
	}
	if clientCAFile == "" {
		// A TLS dial to the webhook port; with client certificates
		// required it would count a refused handshake every probe.
		if err := mgr.AddReadyzCheck("webhook-served", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return fmt.Errorf("adding the webhook server check: %w", err)
		}
	}
	if err := mgr.AddReadyzCheck("informers", op.InformersCheck(mgr)); err != nil {
		return fmt.Errorf("adding the informers check: %w", err)
	}
	ctrl.Log.WithName("setup").Info("starting gitops-reverser")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}

// startCPUProfile starts a CPU profile into path and returns the function
// that stops it and writes the file. Each SIGUSR1 ends a segment: the
// profile so far is written to path.N (N = 1, 2, ...) and a new one
// starts. A file appears under its final name only when complete.
func startCPUProfile(path string) (func(), error) {
	p := &cpuProfiler{path: path}
	if err := p.start(); err != nil {
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				p.mu.Lock()
				p.n++
				err := p.finish(path + "." + strconv.Itoa(p.n))
				if err == nil {
					err = p.start()
				}
				p.mu.Unlock()
				if err != nil {
					fmt.Fprintln(os.Stderr, "gitops-reverser: CPU profile segment:", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.finish(path); err != nil {
			fmt.Fprintln(os.Stderr, "gitops-reverser: writing the CPU profile:", err)
		}
	}, nil
}

// cpuProfiler is the --cpu-profile file being written.
type cpuProfiler struct {
	mu   sync.Mutex
	path string
	f    *os.File // path + ".tmp" while a profile runs; nil otherwise
	n    int      // segments written
}

func (p *cpuProfiler) start() error {
	f, err := os.Create(p.path + ".tmp")
	if err != nil {
		return fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := runtimepprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("--cpu-profile: starting the profile: %w", err)
	}
	p.f = f
	return nil
}

// finish stops the running profile and renames its file to name.
func (p *cpuProfiler) finish(name string) error {
	if p.f == nil {
		return nil
	}
	runtimepprof.StopCPUProfile()
	f := p.f
	p.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing the CPU profile: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("naming the CPU profile: %w", err)
	}
	return nil
}

// servePprof serves the net/http/pprof handlers on addr in the background.
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil {
			ctrl.Log.WithName("pprof").Error(err, "serving pprof", "addr", addr)
		}
	}()
}

// containerMemoryLimit reads the container's memory limit from cgroup v2
// (memory.max) or v1 (memory.limit_in_bytes); false when there is none.
// A soft Go memory limit below it makes the garbage collector work harder
// before the kernel would kill the pod, e.g. during a full reconcile of
// many objects.
func containerMemoryLimit() (int64, bool) {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2) or a huge number (v1) mean no limit.
		if err != nil || v <= 0 || v >= 1<<50 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}
