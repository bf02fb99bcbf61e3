// Package clientauth holds the end-to-end specs of webhook client
// authentication: a kube-apiserver started with --admission-control-config-file
// presents a client certificate (from a CA the suite makes) to the webhook,
// and the manager binary, started with --webhook-client-ca-file, hears only
// callers with a certificate from that CA. It has its own control plane,
// since the API server's admission configuration is fixed at its start.
package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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

// clientCN is the common name of the API server's webhook client
// certificate, and the manager's --webhook-client-cn.
const clientCN = "kube-apiserver-webhook-client"

var (
	env        *controlplane.Env
	k8s        client.Client
	gitSrv     *gitserver.Server
	kubeconfig string
	mgr        *controlplane.ManagerProcess
	workDir    string
	// clientCA issues the API server's client certificate; otherCA is
	// someone else's.
	clientCA, otherCA *certAuthority
	scheme            = runtime.NewScheme()
)

func TestClientAuth(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "Client-auth suite (the API server presents a client certificate to the webhook)")
}

var _ = BeforeSuite(func() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	_, err := controlplane.ManagerBinary()
	Expect(err).NotTo(HaveOccurred())

	dir := GinkgoT().TempDir()
	clientCA, otherCA = newCertAuthority("webhook client CA"), newCertAuthority("someone else's CA")
	clientCrt, clientKey := clientCA.clientCert(dir, "apiserver-client", clientCN)
	// The webhook's port is chosen first: the API server's kubeconfig
	// names the webhook by host:port.
	port, err := controlplane.FreePort()
	Expect(err).NotTo(HaveOccurred())
	webhookKubeconfig := writeFile(dir, "webhook-kubeconfig.yaml", fmt.Sprintf(`apiVersion: v1
kind: Config
users:
  - name: "127.0.0.1:%d"
    user:
      client-certificate: %s
      client-key: %s
`, port, clientCrt, clientKey))
	admissionConfig := writeFile(dir, "admission.yaml", fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: %[1]s
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: %[1]s
`, webhookKubeconfig))
	env, err = controlplane.Start(controlplane.WithAPIServerFlag("admission-control-config-file", admissionConfig))
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(dir, "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	gitSrv = gitserver.New(GinkgoT())

	workDir = filepath.Join(dir, "manager")
	caFile := writeFile(dir, "client-ca.crt", string(clientCA.pem))
	mgr, err = controlplane.StartManagerProcess(controlplane.ProcessOptions{
		Kubeconfig: kubeconfig, WorkDir: workDir, WebhookPort: port,
		Args: []string{"--webhook-client-ca-file", caFile, "--webhook-client-cn", clientCN},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(mgr.WaitReady(60*time.Second)).To(Succeed(), func() string { return tail(mgr.Logs(), 100) })
})

var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() && mgr != nil {
		AddReportEntry("manager log", tail(mgr.Logs(), 200))
	}
})

var _ = AfterSuite(func() {
	if mgr != nil {
		Expect(mgr.Stop(60 * time.Second)).To(Succeed())
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// certAuthority is a CA the suite makes.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCertAuthority(name string) *certAuthority {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// clientCert writes a client certificate for cn and its key into dir as
// name.crt and name.key and returns their paths.
func (ca *certAuthority) clientCert(dir, name, cn string) (crtPath, keyPath string) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	crtPath = writeFile(dir, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyPath = writeFile(dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return crtPath, keyPath
}

func writeFile(dir, name, content string) string {
	GinkgoHelper()
	return e2ekit.WriteFile(dir, name, content, 0o600)
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
// WatchRule recording its ConfigMaps.
type target struct {
	ns   string
	repo string
	kit  e2ekit.Target
}

var targetCount int

func newTarget(ctx context.Context) target {
	GinkgoHelper()
	targetCount++
	t := e2ekit.NewTarget(ctx, k8s, gitSrv, e2ekit.TargetOptions{
		Namespace: fmt.Sprintf("clientauth-%d", targetCount),
		Resources: []v1alpha1.ResourceSelector{{APIGroups: []string{""}, Resources: []string{"configmaps"}}},
	})
	return target{ns: t.Namespace, repo: t.Repo, kit: t}
}

// waitActive waits until the rule is active and the API server's calls
// reach the webhook: a server-side dry run is counted by the manager,
// which it is only if the API server passed the client-certificate check.
func (t target) waitActive(ctx context.Context) {
	GinkgoHelper()
	t.kit.WaitRule(ctx, "True/RuleActive")
	e2ekit.WaitWebhookCalled(kubectlBin(), t.ns, admissionRequests, true)
}

func (t target) path(name string) string { return t.kit.Path("", "configmaps", name) }

func (t target) file(p string) string { return t.kit.File(p) }

// authorsOf lists the authors of the commits that changed p, newest first.
func (t target) authorsOf(p string) []string {
	GinkgoHelper()
	return t.kit.AuthorsOf(p)
}
