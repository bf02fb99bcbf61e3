// Package lifecycle holds the end-to-end specs that run the built manager
// binary as its own process, as a user does, so that they can stop it,
// kill it with SIGKILL and start it again against one real kube-apiserver
// and one real Git server. It has its own control plane: the in-process
// suite in test/e2e keeps its manager running for its whole run.
package lifecycle

import (
	"context"
	"fmt"
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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
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

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// kubectl runs the real kubectl as user (impersonated; "" for the admin).
func kubectl(user string, args ...string) (string, error) {
	full := []string{"--kubeconfig", kubeconfig}
	if user != "" {
		full = append(full, "--as", user, "--as-group", "system:masters")
	}
	out, err := exec.Command(env.Kubectl(), append(full, args...)...).CombinedOutput()
	return string(out), err
}

func mustKubectl(user string, args ...string) string {
	GinkgoHelper()
	out, err := kubectl(user, args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl %s: %s", strings.Join(args, " "), out)
	return out
}

// target is a namespace with a Git repository, a GitTarget and a
// WatchRule recording its ConfigMaps, Secrets and Deployments.
type target struct {
	ns   string
	repo string
}

var targetCount int

// newTarget creates the namespace, repository, GitTarget and WatchRule;
// the rule becomes ready once a manager runs.
func newTarget(ctx context.Context) target {
	GinkgoHelper()
	targetCount++
	t := target{ns: fmt.Sprintf("life-%d-%d", GinkgoParallelProcess(), targetCount)}
	t.repo = t.ns + ".git"
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.ns}})).To(Succeed())
	url, _ := gitSrv.CreateBareRepo(t.repo, "main")
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: "git"},
		Data:       map[string][]byte{"username": []byte(gitSrv.Username()), "password": []byte(gitSrv.Password())},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: "history"},
		Spec: v1alpha1.GitTargetSpec{
			URL: url, Branch: "main", BasePath: "cluster",
			SecretRef: &v1alpha1.LocalObjectReference{Name: "git"},
			Commit:    v1alpha1.CommitSpec{CommitterName: "gitops-reverser", CommitterEmail: "bot@reverser.test", AuthorEmailDomain: "users.test"},
			Sync:      v1alpha1.SyncSpec{PushInterval: metav1.Duration{Duration: 500 * time.Millisecond}, PushAfterCommits: 5, PullInterval: metav1.Duration{Duration: time.Minute}},
			Batching:  v1alpha1.BatchingSpec{IdleTimeout: metav1.Duration{Duration: time.Second}, MaxChanges: 50, MaxAge: metav1.Duration{Duration: 10 * time.Second}},
		},
	})).To(Succeed())
	Expect(k8s.Create(ctx, &v1alpha1.WatchRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.ns, Name: "record"},
		Spec: v1alpha1.WatchRuleSpec{
			TargetRef: v1alpha1.LocalObjectReference{Name: "history"},
			RuleSpec: v1alpha1.RuleSpec{Resources: []v1alpha1.ResourceSelector{
				{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments"}},
			}},
		},
	})).To(Succeed())
	return t
}

// waitActive waits until the target's rule reads Ready=True/RuleActive and
// the API server calls the webhook for the namespace.
func (t target) waitActive(ctx context.Context, m *manager) {
	GinkgoHelper()
	Eventually(func() string {
		wr := &v1alpha1.WatchRule{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "record"}, wr); err != nil {
			return err.Error()
		}
		for _, c := range wr.Status.Conditions {
			if c.Type == v1alpha1.ReadyCondition && c.ObservedGeneration == wr.Generation {
				return string(c.Status) + "/" + c.Reason
			}
		}
		return "no condition"
	}).Should(Equal("True/RuleActive"))
	// A server-side dry run reaches the webhook and is dropped there; the
	// manager counts it in its metrics.
	Eventually(func() bool {
		before := webhookRequests(m)
		out, err := kubectl("", "-n", t.ns, "create", "configmap", "probe", "--from-literal=a=b", "--dry-run=server")
		Expect(err).NotTo(HaveOccurred(), out)
		return webhookRequests(m) > before
	}).Should(BeTrue())
}

// webhookRequests reads the manager's count of dry-run admission requests
// from its metrics endpoint.
func webhookRequests(m *manager) float64 {
	return metric(m, "gitops_reverser_admission_requests_total")
}

// path is an object's file under the default layout.
func (t target) path(group, resource, name string) string {
	if group == "" {
		group = "core"
	}
	return "cluster/" + t.ns + "/" + group + "/" + resource + "/" + name + ".yaml"
}

// file returns the file's content on the remote's main branch, "" when
// absent.
func (t target) file(p string) string {
	b, err := gitSrv.ReadFile(t.repo, "main", p)
	if err != nil {
		return ""
	}
	return string(b)
}

// files lists the remote's files under the target's namespace folder.
func (t target) files() []string {
	var out []string
	for _, f := range gitSrv.ListFiles(t.repo, "main") {
		if strings.HasPrefix(f, "cluster/"+t.ns+"/") {
			out = append(out, f)
		}
	}
	return out
}

// authorsOf lists the authors of the commits that changed p, newest first.
func (t target) authorsOf(p string) []string {
	GinkgoHelper()
	var out []string
	if _, ok := gitSrv.Head(t.repo, "main"); !ok {
		return nil
	}
	for _, c := range gitSrv.Log(t.repo, "main") {
		changed, err := gitSrv.ChangedFiles(t.repo, c.Hash)
		Expect(err).NotTo(HaveOccurred())
		for _, f := range changed {
			if f == p {
				out = append(out, c.AuthorName)
			}
		}
	}
	return out
}

func writeFile(dir, name, content string) string {
	GinkgoHelper()
	p := filepath.Join(dir, name)
	Expect(os.WriteFile(p, []byte(content), 0o644)).To(Succeed())
	return p
}
