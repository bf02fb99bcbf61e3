// Command gitops-reverser is the operator: it runs the GitTarget and rule
// controllers, the admission webhook, and the metrics and health endpoints.
// Run it with --help for its flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/operator"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-reverser:", err)
		os.Exit(1)
	}
}

func run() error {
	var opts operator.Options
	var metricsAddr, probeAddr, certDir string
	var webhookPort int
	var leaderElect bool
	fs := flag.CommandLine
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint (/metrics); \"0\" disables it.")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.IntVar(&webhookPort, "webhook-port", 9443, "Port of the admission webhook server (HTTPS).")
	fs.StringVar(&certDir, "webhook-cert-dir", "", "Folder with tls.crt and tls.key for the webhook server (e.g. mounted from cert-manager); empty uses <work-dir>/webhook-certs. When it holds no certificate, a self-signed one is made at start (fine for one replica).")
	fs.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader with a Lease so only one replica watches and writes Git.")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease; empty uses the pod's namespace.")
	fs.StringVar(&opts.WorkDir, "work-dir", os.TempDir()+"/gitops-reverser", "Folder for local Git clones and the journal of changes not yet committed (keep it on a persistent volume to survive a restart of the pod).")
	fs.DurationVar(&opts.GitTimeout, "git-timeout", 30*time.Second, "Bound on every network call to a Git remote (ls-remote, fetch, push): a remote that does not answer in time is retried later, delaying only its own GitTarget.")
	var webhookService, webhookCAFile string
	fs.StringVar(&opts.WebhookURL, "webhook-url", "", "URL the API server calls for the capture webhook (outside a cluster); the operator then manages the ValidatingWebhookConfiguration.")
	fs.StringVar(&webhookService, "webhook-service", "", "namespace/name of the Service in front of the webhook (in a cluster); the operator then manages the ValidatingWebhookConfiguration.")
	fs.StringVar(&webhookCAFile, "webhook-ca-file", "", "PEM file with the CA that signed the webhook's serving certificate (the configuration's caBundle).")
	fs.StringVar(&opts.WebhookConfigurationName, "webhook-configuration-name", "gitops-reverser", "Name of the ValidatingWebhookConfiguration the operator manages.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(fs)
	flag.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nRecords cluster changes selected by WatchRules as commits in Git.\nIt uses the current kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster).\n\nFlags:\n", os.Args[0])
		fs.PrintDefaults()
	}
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if webhookService != "" {
		ns, name, ok := strings.Cut(webhookService, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("--webhook-service %q: want namespace/name", webhookService)
		}
		path := operator.WebhookPath
		port := int32(443)
		opts.WebhookService = &admissionregistrationv1.ServiceReference{Namespace: ns, Name: name, Path: &path, Port: &port}
	}
	if certDir == "" {
		certDir = filepath.Join(opts.WorkDir, "webhook-certs")
	}
	if _, err := os.Stat(filepath.Join(certDir, "tls.crt")); errors.Is(err, iofs.ErrNotExist) {
		hosts := []string{"localhost", "127.0.0.1"}
		if svc := opts.WebhookService; svc != nil {
			hosts = append([]string{svc.Name + "." + svc.Namespace + ".svc", svc.Name + "." + svc.Namespace + ".svc.cluster.local", svc.Name + "." + svc.Namespace}, hosts...)
		}
		ca, err := admission.SelfSignedCert(certDir, hosts)
		if err != nil {
			return fmt.Errorf("making a self-signed webhook certificate: %w", err)
		}
		if webhookCAFile == "" {
			opts.WebhookCABundle = ca
		}
		ctrl.Log.WithName("setup").Info("made a self-signed webhook certificate", "dir", certDir, "hosts", hosts)
	}
	if webhookCAFile != "" {
		ca, err := os.ReadFile(webhookCAFile)
		if err != nil {
			return fmt.Errorf("reading --webhook-ca-file: %w", err)
		}
		opts.WebhookCABundle = ca
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		WebhookServer:           webhook.NewServer(webhook.Options{Port: webhookPort, CertDir: certDir}),
		LeaderElection:          leaderElect,
		LeaderElectionID:        "gitops-reverser-leader",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if _, err := operator.Setup(mgr, opts); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the ready check: %w", err)
	}
	ctrl.Log.WithName("setup").Info("starting gitops-reverser")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}
