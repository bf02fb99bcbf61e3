package packaging

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

// releaseNamespace is where the chart and the kustomize base install the
// manager.
const releaseNamespace = "gitops-reverser-system"

var (
	env        *controlplane.Env
	k8s        client.Client
	kubeconfig string
	kubectl    e2ekit.Kubectl
	helm       string
	root       = controlplane.RepoRoot()
	scheme     = runtime.NewScheme()
)

func TestPackaging(t *testing.T) {
	// Parallel with the Dockerfile's cross builds, which need no control
	// plane.
	t.Parallel()
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Packaging suite (chart, kustomize, dashboard and alert metrics)")
}

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	var err error
	helm, err = helmBinary()
	Expect(err).NotTo(HaveOccurred())
	// Build before the control plane starts, so its time is not the
	// specs' time.
	_, err = controlplane.ManagerBinary()
	Expect(err).NotTo(HaveOccurred())
	env, err = controlplane.Start()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	kubectl = e2ekit.Kubectl{Bin: env.Kubectl(), Kubeconfig: kubeconfig}
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	// A dry run cannot create the namespace its objects go into, and the
	// Prometheus Operator's kinds need their CRDs: both exist in a cluster
	// the chart is installed into.
	kubectl.Must("", "create", "namespace", releaseNamespace)
	kubectl.Must("", "apply", "--server-side", "-f", filepath.Join(root, "test", "packaging", "testdata", "crds"))
	kubectl.Must("", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/prometheusrules.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com")
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// helmBinary returns $HELM (make test exports it), else the pinned helm
// the Makefile builds into bin/helm-<HELM_VERSION>; it fails with the
// command that builds it when it is missing.
func helmBinary() (string, error) {
	p := os.Getenv("HELM")
	if p == "" {
		v, err := makefileVar("HELM_VERSION")
		if err != nil {
			return "", err
		}
		p = filepath.Join(root, "bin", "helm-"+v)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("helm missing at %s (run `make helm`): %w", p, err)
	}
	return p, nil
}

// makefileVar reads `NAME ?= value` from the Makefile.
func makefileVar(name string) (string, error) {
	f, err := os.Open(filepath.Join(root, "Makefile"))
	if err != nil {
		return "", fmt.Errorf("reading the Makefile: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "?=")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s ?= in the Makefile", name)
}

// run runs a command in the repository root and returns its standard
// output; it fails the spec with both outputs when the command fails.
func run(name string, args ...string) string {
	GinkgoHelper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "%s %s:\n%s\n%s", name, strings.Join(args, " "), out, stderr.String())
	return string(out)
}

// writeTemp writes content to a new file and returns its path.
func writeTemp(name, content string) string {
	GinkgoHelper()
	return e2ekit.WriteFile(GinkgoT().TempDir(), name, content, 0o644)
}
