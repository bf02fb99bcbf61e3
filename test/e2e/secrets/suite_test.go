// Package secrets is the end-to-end suite of Secrets in Git (issue 11,
// docs/secrets.md): one real kube-apiserver and one Git server for the
// whole suite, the manager in the test process. With `secrets: Encrypt`
// every committed Secret decrypts with the real, pinned sops CLI (`make
// sops`, bin/sops-<version>, or $SOPS_BIN) and an age identity that only
// the test holds; with the default redaction every recorded Secret file
// re-applies with `kubectl apply --dry-run=server`.
package secrets

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
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

// sopsVersion is the sops CLI the Makefile builds (SOPS_VERSION).
const sopsVersion = "v3.13.3"

var (
	env        *controlplane.Env
	k8s        client.Client
	gitSrv     *gitserver.Server
	kubeconfig string
	sopsBin    string
	cancel     context.CancelFunc
	scheme     = runtime.NewScheme()
)

func TestSecrets(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Secrets in Git: SOPS encryption and redaction (real kube-apiserver, sops CLI, Git server)")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	sopsBin = os.Getenv("SOPS_BIN")
	if sopsBin == "" {
		sopsBin = filepath.Join(controlplane.RepoRoot(), "bin", "sops-"+sopsVersion)
	}
	_, err := os.Stat(sopsBin)
	Expect(err).NotTo(HaveOccurred(), "the sops CLI is missing: run `make sops`")

	env, err = controlplane.Start()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	gitSrv = gitserver.New(GinkgoT())

	// A secret-shaped custom resource for the rules' secretFields.
	crd := filepath.Join(GinkgoT().TempDir(), "crd.yaml")
	Expect(os.WriteFile(crd, []byte(credentialsCRD), 0o600)).To(Succeed())
	kubectl().Must("", "apply", "-f", crd)
	kubectl().Must("", "wait", "--for=condition=established", "--timeout=60s", "crd/databasecredentials.example.com")

	mgr, err := env.NewManager(scheme, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	_, err = operator.Setup(mgr, operator.Options{
		RetryInterval:   2 * time.Second,
		WorkDir:         GinkgoT().TempDir(),
		WebhookURL:      mgr.WebhookBase + operator.WebhookPath,
		WebhookCABundle: mgr.CABundle,
		ConfirmGrace:    2 * time.Second,
	})
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

// credentialsCRD serves DatabaseCredentials, whose spec.password a rule
// names in secretFields.
const credentialsCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: databasecredentials.example.com
spec:
  group: example.com
  names: {kind: DatabaseCredentials, listKind: DatabaseCredentialsList, plural: databasecredentials, singular: databasecredentials}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
`

func kubectl() e2ekit.Kubectl {
	return e2ekit.Kubectl{Bin: env.Kubectl(), Kubeconfig: kubeconfig}
}

var targets int

// newTarget creates a namespace, its repository, a GitTarget and a
// WatchRule on Secrets and ConfigMaps, edited by the options.
func newTarget(ctx context.Context, editTarget func(*v1alpha1.GitTarget), editRule func(*v1alpha1.WatchRule)) e2ekit.Target {
	GinkgoHelper()
	targets++
	o := e2ekit.TargetOptions{
		Namespace: fmt.Sprintf("secrets-%d", targets),
		Resources: []v1alpha1.ResourceSelector{{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}}},
	}
	if editTarget != nil {
		o.EditGitTarget = append(o.EditGitTarget, editTarget)
	}
	if editRule != nil {
		o.EditRule = append(o.EditRule, editRule)
	}
	t := e2ekit.NewTarget(ctx, k8s, gitSrv, o)
	// The rule is active; with a missing or malformed recipient its first
	// reconcile fails closed at once on the namespace's Git credentials
	// Secret (an object the watch's initial list holds is written at once).
	Eventually(func() string { return t.RuleReady(ctx) }).Should(BeElementOf("True/RuleActive", "False/EncryptionFailed"))
	return t
}
