package controlplane

import (
	"crypto/tls"
	"fmt"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"

	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/controller"
)

// Manager is a controller-runtime manager for a suite, with its webhook
// server on 127.0.0.1 behind a certificate made for the run.
type Manager struct {
	ctrl.Manager
	// WebhookBase is https://127.0.0.1:<port>, the base of webhook URLs.
	WebhookBase string
	// CABundle signed the webhook's certificate.
	CABundle []byte
}

// NewManager returns a manager for the control plane with metrics and
// probes off and the webhook server on a free port; certificates go to
// dir.
func (e *Env) NewManager(scheme *runtime.Scheme, dir string) (*Manager, error) {
	certDir := filepath.Join(dir, "webhook-certs")
	ca, err := ServingCert(certDir)
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controller.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir, TLSOpts: []func(*tls.Config){admission.HTTP1Only}}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	return &Manager{Manager: mgr, WebhookBase: fmt.Sprintf("https://127.0.0.1:%d", port), CABundle: ca}, nil
}
