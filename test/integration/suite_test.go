package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/operator"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

var (
	env        *controlplane.Env
	k8s        client.Client
	gitSrv     *gitserver.Server
	kubeconfig string
	cancel     context.CancelFunc
	scheme     = runtime.NewScheme()
)

func TestIntegration(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	RunSpecs(t, "Integration suite (real kube-apiserver, real Git server)")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	var err error
	env, err = controlplane.Start()
	Expect(err).NotTo(HaveOccurred())
	// Printed to stdout so `make test` shows which API server the suite ran against.
	fmt.Fprintf(os.Stdout, "integration: envtest is running kube-apiserver %s from %s\n", env.Version, env.AssetsDir)
	Expect(env.Version).To(HavePrefix("v1.37"))

	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())

	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	gitSrv = gitserver.New(GinkgoT())

	// The operator serves its webhook even when this suite does not
	// install it in the API server.
	mgr, err := env.NewManager(scheme, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	_, err = operator.Setup(mgr, operator.Options{RetryInterval: 2 * time.Second, WorkDir: GinkgoT().TempDir()})
	Expect(err).NotTo(HaveOccurred())

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
