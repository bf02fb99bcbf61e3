// Package controlplane starts a real kube-apiserver and etcd (built by
// `make controlplane` into bin/k8s) for the integration and end-to-end
// suites and for `make run`'s local mode. It never skips: when the binaries
// are missing it fails with the command that builds them.
package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot returns the repository root, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns the folder with etcd, kube-apiserver and kubectl:
// $KUBEBUILDER_ASSETS, else bin/k8s of the repository. It fails when a
// binary is missing.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("control-plane binary %s missing in %s (run `make controlplane`): %w", b, dir, err)
		}
	}
	return dir, nil
}

// Env is a running control plane.
type Env struct {
	// Environment is the underlying envtest environment.
	Environment *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Version is the API server's reported version, e.g. v1.37.2.
	Version string
	// AssetsDir holds the binaries, including kubectl.
	AssetsDir string
}

// Option changes how Start starts the control plane.
type Option func(*envtest.Environment)

// WithAPIServerFlag appends values to a kube-apiserver flag, e.g.
// WithAPIServerFlag("admission-control-config-file", path). envtest's own
// flags stay; a flag envtest sets is given the values in addition.
func WithAPIServerFlag(name string, values ...string) Option {
	return func(env *envtest.Environment) {
		env.ControlPlane.GetAPIServer().Configure().Append(name, values...)
	}
}

// Start starts etcd and kube-apiserver with the CRDs of config/crd/bases
// installed. Without options it starts what envtest starts by default.
func Start(opts ...Option) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		// envtest's 20 s per component is short on a loaded machine, and
		// a timeout restarts the component from scratch.
		env.ControlPlaneStartTimeout = startTimeout
	}
	for _, o := range opts {
		o(env)
	}
	cfg, err := env.Start()
	if err != nil && env.Config != nil && strings.Contains(err.Error(), "default namespace didn't register") {
		// envtest waits 5 s (hard-coded) for the API server to create the
		// default namespace; a loaded machine may take longer. The
		// control plane runs: wait for it here, then install what Start
		// left undone.
		cfg, err = finishStart(env)
	}
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating a discovery client: %w", err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("reading the API server version: %w", err)
	}
	return &Env{Environment: env, Config: cfg, Version: info.GitVersion, AssetsDir: assets}, nil
}

// startTimeout bounds the start of etcd, of kube-apiserver and the wait
// for the default namespace.
const startTimeout = 2 * time.Minute

// finishStart does what envtest.Environment.Start does after it waited for
// the default namespace (with Start's options: no webhooks are installed),
// after waiting for it up to startTimeout.
func finishStart(env *envtest.Environment) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, startTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("the default namespace did not appear within %s: %w", startTimeout, err)
	}
	if err := env.WebhookInstallOptions.PrepWithoutInstalling(); err != nil {
		return nil, fmt.Errorf("preparing webhooks: %w", err)
	}
	o := env.CRDInstallOptions
	if o.Scheme == nil {
		o.Scheme = env.Scheme
	}
	o.CRDs = append(o.CRDs, env.CRDs...)
	o.Paths = append(o.Paths, env.CRDDirectoryPaths...)
	o.ErrorIfPathMissing = env.ErrorIfCRDPathMissing
	o.WebhookOptions = env.WebhookInstallOptions
	crds, err := envtest.InstallCRDs(env.Config, o)
	if err != nil {
		return nil, fmt.Errorf("installing CRDs: %w", err)
	}
	env.CRDs = crds
	if err := env.WebhookInstallOptions.Install(env.Config); err != nil {
		return nil, fmt.Errorf("installing webhooks: %w", err)
	}
	return env.Config, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if err := e.Environment.Stop(); err != nil {
		return fmt.Errorf("stopping the control plane: %w", err)
	}
	return nil
}

// Kubectl returns the path of the built kubectl.
func (e *Env) Kubectl() string { return filepath.Join(e.AssetsDir, "kubectl") }

// WriteKubeconfig writes a kubeconfig for an administrator user to path,
// for kubectl.
func (e *Env) WriteKubeconfig(path string) error {
	user, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding an admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}
