// Package lifecycle holds the end-to-end specs that run the built manager
// binary as its own process, as a user does, so that they can stop it,
// kill it with SIGKILL and start it again against one real kube-apiserver
// and one real Git server. It has its own control plane: the in-process
// suite in test/e2e keeps its manager running for its whole run.
package lifecycle

import (
	"context"
	"fmt"
	"path/filepath"
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
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

var (
	env        *controlplane.Env
	k8s        client.Client
	gitSrv     *gitserver.Server
	kubeconfig string
	scheme     = runtime.NewScheme()
)

func TestLifecycle(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Lifecycle suite (the manager binary as a process: stop, SIGKILL, restart)")
}

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	// Build before the control plane starts, so its time is not the
	// specs' time.
	_, err := controlplane.ManagerBinary()
	Expect(err).NotTo(HaveOccurred())
	env, err = controlplane.Start()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	gitSrv = gitserver.New(GinkgoT())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// manager is one manager process of a spec; restarts keep its work dir
// and webhook port.
type manager struct {
	workDir string
	port    int
	args    []string
	proc    *controlplane.ManagerProcess
}

// newManager returns a manager with a fresh work dir; start it with start.
func newManager(args ...string) *manager {
	return &manager{workDir: GinkgoT().TempDir(), args: args}
}

// start starts the process and waits until it is ready. Its output goes
// to the spec's report when the spec fails.
func (m *manager) start() {
	GinkgoHelper()
	p, err := controlplane.StartManagerProcess(controlplane.ProcessOptions{
		Kubeconfig: kubeconfig, WorkDir: m.workDir, WebhookPort: m.port, Args: m.args,
	})
	Expect(err).NotTo(HaveOccurred())
	m.port, m.proc = p.WebhookPort, p
	Expect(p.WaitReady(60 * time.Second)).To(Succeed())
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			AddReportEntry("manager log", tail(p.Logs(), 200))
		}
		_ = p.Kill()
	})
}

// kill ends the process with SIGKILL.
func (m *manager) kill() {
	GinkgoHelper()
	Expect(m.proc.Kill()).To(Succeed())
}

// stop ends the process with SIGTERM and waits for it.
func (m *manager) stop() {
	GinkgoHelper()
	Expect(m.proc.Stop(60 * time.Second)).To(Succeed())
}

func tail(s string, lines int) string { return e2ekit.Tail(s, lines) }

// kubectl runs the real kubectl as user (impersonated; "" for the admin).
func kubectl(user string, args ...string) (string, error) {
	return kubectlBin().Run(user, args...)
}

func mustKubectl(user string, args ...string) string {
	GinkgoHelper()
	return kubectlBin().Must(user, args...)
}

func kubectlBin() e2ekit.Kubectl {
	return e2ekit.Kubectl{Bin: env.Kubectl(), Kubeconfig: kubeconfig}
}

// target is a namespace with a Git repository, a GitTarget and a
// WatchRule recording its ConfigMaps, Secrets and Deployments.
type target struct {
	ns   string
	repo string
	kit  e2ekit.Target
}

var targetCount int

// newTarget creates the namespace, repository, GitTarget and WatchRule;
// the rule becomes ready once a manager runs.
func newTarget(ctx context.Context) target {
	GinkgoHelper()
	targetCount++
	t := e2ekit.NewTarget(ctx, k8s, gitSrv, e2ekit.TargetOptions{
		Namespace: fmt.Sprintf("life-%d-%d", GinkgoParallelProcess(), targetCount),
	})
	return target{ns: t.Namespace, repo: t.Repo, kit: t}
}

// waitActive waits until the target's rule reads Ready=True/RuleActive and
// the API server calls the webhook for the namespace: a server-side dry
// run reaches the webhook and is dropped there; the manager counts it in
// its metrics.
func (t target) waitActive(ctx context.Context, m *manager) {
	GinkgoHelper()
	t.kit.WaitRule(ctx, "True/RuleActive")
	e2ekit.WaitWebhookCalled(kubectlBin(), t.ns, func() float64 { return webhookRequests(m) }, true)
}

// webhookRequests reads the manager's count of dry-run admission requests
// from its metrics endpoint.
func webhookRequests(m *manager) float64 {
	return metric(m, "gitops_reverser_admission_requests_total")
}

// path is an object's file under the default layout.
func (t target) path(group, resource, name string) string { return t.kit.Path(group, resource, name) }

// file returns the file's content on the remote's main branch, "" when
// absent.
func (t target) file(p string) string { return t.kit.File(p) }

// files lists the remote's files under the target's namespace folder.
func (t target) files() []string { return t.kit.Files() }

// authorsOf lists the authors of the commits that changed p, newest first.
func (t target) authorsOf(p string) []string {
	GinkgoHelper()
	return t.kit.AuthorsOf(p)
}

func writeFile(dir, name, content string) string {
	GinkgoHelper()
	return e2ekit.WriteFile(dir, name, content, 0o644)
}
