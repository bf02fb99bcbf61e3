// Package ha holds the end-to-end spec of two manager processes against
// one kube-apiserver with leader election on: the leader is killed with
// SIGKILL during a stream of changes, the other takes over, and every
// change reaches Git with its author once the hand-over is done. It runs
// the built binary as processes (see test/e2e/lifecycle), with its own
// control plane and Git server.
package ha

import (
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

func TestHA(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "HA suite (two manager processes, leader election, SIGKILL of the leader)")
}

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
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

// startManagers starts n manager processes with args (and the args
// perProcess returns for process i) at once, as a Deployment's pods start,
// and waits until each is ready; their logs go to the report when the spec
// fails.
func startManagers(n int, perProcess func(i int) []string, args ...string) []*controlplane.ManagerProcess {
	GinkgoHelper()
	procs := make([]*controlplane.ManagerProcess, n)
	for i := range procs {
		p, err := controlplane.StartManagerProcess(controlplane.ProcessOptions{
			Kubeconfig: kubeconfig, WorkDir: GinkgoT().TempDir(), Args: append(append([]string{}, args...), perProcess(i)...),
		})
		Expect(err).NotTo(HaveOccurred())
		procs[i] = p
		DeferCleanup(func() {
			if CurrentSpecReport().Failed() {
				AddReportEntry("manager log "+p.WebhookURL, e2ekit.Tail(p.Logs(), 150))
			}
			_ = p.Kill()
		})
	}
	for _, p := range procs {
		Expect(p.WaitReady(90 * time.Second)).To(Succeed())
	}
	return procs
}

func kubectl() e2ekit.Kubectl {
	return e2ekit.Kubectl{Bin: env.Kubectl(), Kubeconfig: kubeconfig}
}

// metric sums a metric family on p's /metrics; 0 when unreadable.
func metric(p *controlplane.ManagerProcess, name string) float64 {
	v, err := e2ekit.Metric(p.MetricsAddr, name)
	if err != nil {
		return 0
	}
	return v
}
