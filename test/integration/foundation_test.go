package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

var nsCounter atomic.Int64

// newNamespace creates a fresh namespace for one spec.
func newNamespace(ctx context.Context) string {
	name := fmt.Sprintf("it-%d", nsCounter.Add(1))
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

func createSecret(ctx context.Context, ns, name string, data map[string][]byte) {
	Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data})).To(Succeed())
}

func createTarget(ctx context.Context, ns, name, url, secret string, mutate ...func(*v1alpha1.GitTarget)) {
	t := &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.GitTargetSpec{URL: url, Branch: "main"},
	}
	if secret != "" {
		t.Spec.SecretRef = &v1alpha1.LocalObjectReference{Name: secret}
	}
	for _, m := range mutate {
		m(t)
	}
	Expect(k8s.Create(ctx, t)).To(Succeed())
}

// readyOf returns the Ready condition of a GitTarget, WatchRule or
// ClusterWatchRule, or nil.
func readyOf(ctx context.Context, obj client.Object, key client.ObjectKey) func() *metav1.Condition {
	return func() *metav1.Condition {
		if err := k8s.Get(ctx, key, obj); err != nil {
			return nil
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *v1alpha1.GitTarget:
			conds = o.Status.Conditions
		case *v1alpha1.WatchRule:
			conds = o.Status.Conditions
		case *v1alpha1.ClusterWatchRule:
			conds = o.Status.Conditions
		}
		return meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	}
}

func haveReady(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()), HaveField("Status", status), HaveField("Reason", reason))
}

var _ = Describe("GitTarget", func() {
	var ctx context.Context
	var ns string
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})
	httpCreds := func() map[string][]byte {
		return map[string][]byte{"username": []byte(gitSrv.Username()), "password": []byte(gitSrv.Password())}
	}

	It("is Ready with good HTTPS credentials and reports the branch head", func() {
		url, _ := gitSrv.CreateBareRepo(ns+"-https.git", "main")
		createSecret(ctx, ns, "creds", httpCreds())
		createTarget(ctx, ns, "repo", url, "creds")
		key := client.ObjectKey{Namespace: ns, Name: "repo"}
		Eventually(readyOf(ctx, &v1alpha1.GitTarget{}, key)).Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRemoteReachable))
		t := &v1alpha1.GitTarget{}
		Expect(k8s.Get(ctx, key, t)).To(Succeed())
		head, ok := gitSrv.Head(ns+"-https.git", "main")
		Expect(ok).To(BeTrue())
		Expect(t.Status.Head).To(Equal(head))
		Expect(t.Status.ObservedGeneration).To(Equal(t.Generation))
	})

	It("is Ready with good SSH credentials", func() {
		_, url := gitSrv.CreateBareRepo(ns+"-ssh.git", "main")
		createSecret(ctx, ns, "ssh", map[string][]byte{
			"identity":    gitSrv.ClientPrivateKeyPEM(),
			"known_hosts": []byte(gitSrv.KnownHostsLine()),
		})
		createTarget(ctx, ns, "repo", url, "ssh")
		Eventually(readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: "repo"})).
			Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRemoteReachable))
	})

	It("reports AuthenticationFailed for a wrong password, without the password in the message", func() {
		url, _ := gitSrv.CreateBareRepo(ns+".git", "main")
		createSecret(ctx, ns, "creds", map[string][]byte{"username": []byte(gitSrv.Username()), "password": []byte("not-the-password")})
		createTarget(ctx, ns, "repo", url, "creds")
		getReady := readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: "repo"})
		Eventually(getReady).Should(haveReady(metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed))
		Expect(getReady().Message).NotTo(ContainSubstring("not-the-password"))
		stalled := &v1alpha1.GitTarget{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "repo"}, stalled)).To(Succeed())
		Expect(meta.IsStatusConditionTrue(stalled.Status.Conditions, v1alpha1.StalledCondition)).To(BeTrue())
		// A Warning event carries the same reason as the condition.
		Eventually(func() []string {
			list := &eventsv1.EventList{}
			Expect(k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
			var reasons []string
			for _, e := range list.Items {
				if e.Regarding.Name == "repo" && e.Type == "Warning" {
					reasons = append(reasons, e.Reason)
				}
			}
			return reasons
		}).Should(ContainElement(v1alpha1.ReasonAuthenticationFailed))
	})

	It("reports RepositoryNotFound for a wrong URL", func() {
		gitSrv.CreateBareRepo(ns+".git", "main")
		createSecret(ctx, ns, "creds", httpCreds())
		createTarget(ctx, ns, "repo", gitSrv.HTTPURL(ns+"-typo.git"), "creds")
		Eventually(readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: "repo"})).
			Should(haveReady(metav1.ConditionFalse, v1alpha1.ReasonRepositoryNotFound))
	})

	It("reports SecretNotFound, then becomes Ready once the Secret is created, without a restart", func() {
		url, _ := gitSrv.CreateBareRepo(ns+".git", "main")
		createTarget(ctx, ns, "repo", url, "later")
		getReady := readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: "repo"})
		Eventually(getReady).Should(haveReady(metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound))
		Expect(getReady().Message).To(ContainSubstring(`"later"`))
		createSecret(ctx, ns, "later", httpCreds())
		Eventually(getReady).Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRemoteReachable))
	})

	It("reports BranchNotFound, and creates the branch when asked to", func() {
		url, _ := gitSrv.CreateBareRepo(ns+".git", "main")
		createSecret(ctx, ns, "creds", httpCreds())
		createTarget(ctx, ns, "missing", url, "creds", func(t *v1alpha1.GitTarget) { t.Spec.Branch = "history" })
		Eventually(readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: "missing"})).
			Should(haveReady(metav1.ConditionFalse, v1alpha1.ReasonBranchNotFound))

		createTarget(ctx, ns, "create", url, "creds", func(t *v1alpha1.GitTarget) {
			t.Spec.Branch = "recorded"
			t.Spec.CreateBranch = true
		})
		Eventually(readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: "create"})).
			Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonBranchCreated))
		_, ok := gitSrv.Head(ns+".git", "recorded")
		Expect(ok).To(BeTrue(), "the branch exists on the remote")
	})
})

var _ = Describe("WatchRule", func() {
	var ctx context.Context
	var ns string
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})
	readyTarget := func(name string) {
		url, _ := gitSrv.CreateBareRepo(ns+"-"+name+".git", "main")
		createSecret(ctx, ns, name+"-creds", map[string][]byte{"username": []byte(gitSrv.Username()), "password": []byte(gitSrv.Password())})
		createTarget(ctx, ns, name, url, name+"-creds")
		Eventually(readyOf(ctx, &v1alpha1.GitTarget{}, client.ObjectKey{Namespace: ns, Name: name})).
			Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRemoteReachable))
	}
	rule := func(name, target string, res ...v1alpha1.ResourceSelector) *v1alpha1.WatchRule {
		return &v1alpha1.WatchRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.WatchRuleSpec{
				TargetRef: v1alpha1.LocalObjectReference{Name: target},
				RuleSpec:  v1alpha1.RuleSpec{Resources: res},
			},
		}
	}

	It("is Ready for served resources and lists them in its status", func() {
		readyTarget("repo")
		Expect(k8s.Create(ctx, rule("apps", "repo",
			v1alpha1.ResourceSelector{APIGroups: []string{""}, Resources: []string{"configmaps"}},
			v1alpha1.ResourceSelector{APIGroups: []string{"apps"}, Resources: []string{"deployments"}},
		))).To(Succeed())
		key := client.ObjectKey{Namespace: ns, Name: "apps"}
		Eventually(readyOf(ctx, &v1alpha1.WatchRule{}, key)).Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRuleActive))
		wr := &v1alpha1.WatchRule{}
		Expect(k8s.Get(ctx, key, wr)).To(Succeed())
		Expect(wr.Status.Resources).To(ConsistOf("/v1, Resource=configmaps", "apps/v1, Resource=deployments"))
	})

	It("names an unknown resource in a ResourceNotFound condition", func() {
		readyTarget("repo")
		Expect(k8s.Create(ctx, rule("typo", "repo",
			v1alpha1.ResourceSelector{APIGroups: []string{"apps"}, Resources: []string{"deploymentz"}}))).To(Succeed())
		getReady := readyOf(ctx, &v1alpha1.WatchRule{}, client.ObjectKey{Namespace: ns, Name: "typo"})
		Eventually(getReady).Should(haveReady(metav1.ConditionFalse, v1alpha1.ReasonResourceNotFound))
		Expect(getReady().Message).To(ContainSubstring("deploymentz"))
	})

	It("reports TargetNotFound, then becomes Ready once the GitTarget appears", func() {
		Expect(k8s.Create(ctx, rule("early", "later",
			v1alpha1.ResourceSelector{APIGroups: []string{""}, Resources: []string{"configmaps"}}))).To(Succeed())
		getReady := readyOf(ctx, &v1alpha1.WatchRule{}, client.ObjectKey{Namespace: ns, Name: "early"})
		Eventually(getReady).Should(haveReady(metav1.ConditionFalse, v1alpha1.ReasonTargetNotFound))
		readyTarget("later")
		Eventually(getReady).Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRuleActive))
	})

	It("refuses a cluster-scoped resource in a namespaced WatchRule", func() {
		readyTarget("repo")
		Expect(k8s.Create(ctx, rule("ns", "repo",
			v1alpha1.ResourceSelector{APIGroups: []string{""}, Resources: []string{"namespaces"}}))).To(Succeed())
		getReady := readyOf(ctx, &v1alpha1.WatchRule{}, client.ObjectKey{Namespace: ns, Name: "ns"})
		Eventually(getReady).Should(haveReady(metav1.ConditionFalse, "UnsupportedScope"))
	})

	It("lets a ClusterWatchRule select cluster-scoped resources", func() {
		readyTarget("repo")
		cwr := &v1alpha1.ClusterWatchRule{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-platform"},
			Spec: v1alpha1.ClusterWatchRuleSpec{
				TargetRef: v1alpha1.NamespacedObjectReference{Namespace: ns, Name: "repo"},
				RuleSpec: v1alpha1.RuleSpec{Resources: []v1alpha1.ResourceSelector{
					{APIGroups: []string{""}, Resources: []string{"namespaces"}},
				}},
			},
		}
		Expect(k8s.Create(ctx, cwr)).To(Succeed())
		Eventually(readyOf(ctx, &v1alpha1.ClusterWatchRule{}, client.ObjectKey{Name: cwr.Name})).
			Should(haveReady(metav1.ConditionTrue, v1alpha1.ReasonRuleActive))
	})
})

var _ = Describe("kubectl with the samples", func() {
	It("applies config/samples/ and shows the printer columns", func() {
		kubectl := func(args ...string) string {
			cmd := exec.Command(env.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), string(out))
			return string(out)
		}
		out := kubectl("apply", "-f", filepath.Join(controlplane.RepoRoot(), "config", "samples"))
		Expect(out).To(ContainSubstring("watchrule.reverser.gitops-reverser.dev/default-apps created"))
		Expect(out).To(ContainSubstring("gittarget.reverser.gitops-reverser.dev/cluster-history created"))
		Eventually(func() string { return kubectl("get", "watchrules", "-n", "default") }).Should(
			And(ContainSubstring("TARGET"), ContainSubstring("READY"), ContainSubstring("REASON"), ContainSubstring("AGE"),
				ContainSubstring("default-apps"), ContainSubstring("cluster-history")))
		// The sample target points at a Git server that does not run in
		// this test, so the rule waits for it with a reason that says so.
		Eventually(func() string { return kubectl("get", "watchrules", "-n", "default", "--no-headers") }).Should(
			MatchRegexp(`default-apps\s+cluster-history\s+False\s+TargetNotReady`))
		Expect(strings.Fields(kubectl("get", "clusterwatchrules", "--no-headers"))).To(ContainElement("platform"))
	})
})
