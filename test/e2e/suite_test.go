package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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
	op         *operator.Operator
	kubeconfig string
	webhookURL string
	caBundle   []byte
	cancel     context.CancelFunc
	scheme     = runtime.NewScheme()
)

// defaultEventuallyTimeout bounds what the suite waits for.
const defaultEventuallyTimeout = 60 * time.Second

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(defaultEventuallyTimeout)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	RunSpecs(t, "End-to-end capture suite (real kube-apiserver + webhook, kubectl, Git server)")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(GinkgoWriter, operatorLog)), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	var err error
	env, err = controlplane.Start()
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintf(os.Stdout, "e2e: envtest is running kube-apiserver %s from %s\n", env.Version, env.AssetsDir)
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(env.WriteKubeconfig(kubeconfig)).To(Succeed())
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	gitSrv = gitserver.New(GinkgoT())

	mgr, err := env.NewManager(scheme, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	caBundle = mgr.CABundle
	webhookURL = mgr.WebhookBase + operator.WebhookPath
	op, err = operator.Setup(mgr, operator.Options{
		RetryInterval:   2 * time.Second,
		WorkDir:         GinkgoT().TempDir(),
		WebhookURL:      webhookURL,
		WebhookCABundle: caBundle,
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

// kubectl runs the real kubectl as user (impersonated; "" for the admin)
// and returns its combined output.
func kubectl(user string, args ...string) (string, error) {
	full := []string{"--kubeconfig", kubeconfig}
	if user != "" {
		full = append(full, "--as", user, "--as-group", "system:masters")
	}
	cmd := exec.Command(env.Kubectl(), append(full, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustKubectl(user string, args ...string) string {
	out, err := kubectl(user, args...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "kubectl %s: %s", strings.Join(args, " "), out)
	return out
}

// impersonated returns a client that acts as user.
func impersonated(user string) client.Client {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	cfg.QPS, cfg.Burst = 200, 400
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return c
}

// fixture is one namespace with a Git repository, a ready GitTarget and a
// ready WatchRule selecting resources of that namespace.
type fixture struct {
	ns   string
	repo string
}

var fixtureCount int

// fixtureOption changes the fixture's WatchRule before it is created.
type fixtureOption func(*v1alpha1.WatchRule)

func newFixture(ctx context.Context, options ...fixtureOption) fixture {
	return newFixtureWaiting(ctx, "True/RuleActive", options...)
}

// newFixtureWaiting creates a fixture and waits until its rule's Ready
// condition reads want ("Status/Reason").
func newFixtureWaiting(ctx context.Context, want string, options ...fixtureOption) fixture {
	fixtureCount++
	f := fixture{ns: fmt.Sprintf("e2e-%d", fixtureCount)}
	f.repo = f.ns + ".git"
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})).To(Succeed())
	url, _ := gitSrv.CreateBareRepo(f.repo, "main")
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "git"},
		Data:       map[string][]byte{"username": []byte(gitSrv.Username()), "password": []byte(gitSrv.Password())},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "history"},
		Spec: v1alpha1.GitTargetSpec{
			URL: url, Branch: "main", BasePath: "cluster",
			SecretRef: &v1alpha1.LocalObjectReference{Name: "git"},
			Commit:    v1alpha1.CommitSpec{CommitterName: "gitops-reverser", CommitterEmail: "bot@reverser.test", AuthorEmailDomain: "users.test"},
			Sync:      v1alpha1.SyncSpec{PushInterval: metav1.Duration{Duration: 500 * time.Millisecond}, PushAfterCommits: 5, PullInterval: metav1.Duration{Duration: time.Minute}},
			Batching:  v1alpha1.BatchingSpec{IdleTimeout: metav1.Duration{Duration: time.Second}, MaxChanges: 50, MaxAge: metav1.Duration{Duration: 10 * time.Second}},
		},
	})).To(Succeed())
	rule := &v1alpha1.WatchRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "record"},
		Spec: v1alpha1.WatchRuleSpec{
			TargetRef: v1alpha1.LocalObjectReference{Name: "history"},
			RuleSpec: v1alpha1.RuleSpec{Resources: []v1alpha1.ResourceSelector{
				{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments"}},
			}},
		},
	}
	for _, o := range options {
		o(rule)
	}
	Expect(k8s.Create(ctx, rule)).To(Succeed())
	Eventually(func() string {
		wr := &v1alpha1.WatchRule{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "record"}, wr); err != nil {
			return err.Error()
		}
		for _, c := range wr.Status.Conditions {
			if c.Type == v1alpha1.ReadyCondition {
				return string(c.Status) + "/" + c.Reason
			}
		}
		return "no condition"
	}).Should(Equal(want))
	if want != "True/RuleActive" {
		return f
	}
	// The webhook configuration and the informers follow the index; wait
	// until both are in step, then until the API server calls the webhook
	// for this namespace (it reloads webhook configurations
	// asynchronously): a server-side dry run reaches the webhook and is
	// dropped there, so it probes without recording anything.
	Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())
	waitWebhookCalled(f.ns, true)
	return f
}

// waitWebhookCalled waits until a server-side dry-run create of a ConfigMap
// in ns does (called true) or does not reach the webhook.
func waitWebhookCalled(ns string, called bool) {
	EventuallyWithOffset(1, func() bool {
		before := op.AdmissionRequests()
		out, err := kubectl("", "-n", ns, "create", "configmap", "probe", "--from-literal=a=b", "--dry-run=server")
		ExpectWithOffset(2, err).NotTo(HaveOccurred(), out)
		return (op.AdmissionRequests() > before) == called
	}).Should(BeTrue())
}

// path returns the repository path of an object under the default layout.
func (f fixture) path(group, resource, name string) string {
	if group == "" {
		group = "core"
	}
	return "cluster/" + f.ns + "/" + group + "/" + resource + "/" + name + ".yaml"
}

// commitsTouching returns the commits (newest first) that changed p.
func (f fixture) commitsTouching(p string) []gitserver.Commit {
	var out []gitserver.Commit
	for _, c := range gitSrv.Log(f.repo, "main") {
		files, err := gitSrv.ChangedFiles(f.repo, c.Hash)
		Expect(err).NotTo(HaveOccurred())
		for _, changed := range files {
			if changed == p {
				out = append(out, c)
			}
		}
	}
	return out
}

func (f fixture) file(p string) string {
	b, err := gitSrv.ReadFile(f.repo, "main", p)
	if err != nil {
		return ""
	}
	return string(b)
}

func (f fixture) authorsOf(p string) []string {
	var out []string
	for _, c := range f.commitsTouching(p) {
		out = append(out, c.AuthorName)
	}
	return out
}
