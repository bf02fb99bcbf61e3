package lifecycle

import (
	"context"
	"sort"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

var _ = Describe("Full reconcile at start", func() {
	It("makes the files equal what the rule selects after changes made while the manager was stopped, in one commit, leaving a README and an unselected kind", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		// Objects labelled recorded=no leave the rule.
		rule := &v1alpha1.WatchRule{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "record"}, rule)).To(Succeed())
		rule.Spec.LabelSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "recorded", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"no"}}}}
		Expect(k8s.Update(ctx, rule)).To(Succeed())
		t.waitActive(ctx, m)

		for _, name := range []string{"keep", "change-me", "delete-me", "relabel-me"} {
			mustKubectl("alice", "-n", t.ns, "create", "configmap", name, "--from-literal=k=v1")
		}
		for _, name := range []string{"web", "worker"} {
			mustKubectl("alice", "-n", t.ns, "create", "deployment", name, "--image=registry.example/app:1")
		}
		// Everything is written (the Secret the rule found when it started
		// after its margin) before the manager stops.
		Eventually(t.files).Should(Equal(sortedSelectedPaths(ctx, t)))

		m.stop()
		mustKubectl("bob", "-n", t.ns, "create", "configmap", "born-while-down", "--from-literal=k=v1")
		mustKubectl("bob", "-n", t.ns, "patch", "configmap", "change-me", "--type=merge", "-p", `{"data":{"k":"v2"}}`)
		mustKubectl("bob", "-n", t.ns, "delete", "configmap", "delete-me")
		mustKubectl("bob", "-n", t.ns, "label", "configmap", "relabel-me", "recorded=no")
		mustKubectl("bob", "-n", t.ns, "scale", "deployment", "web", "--replicas=3")
		mustKubectl("bob", "-n", t.ns, "delete", "deployment", "worker")
		mustKubectl("bob", "-n", t.ns, "create", "deployment", "api", "--image=registry.example/api:1")
		readme := "cluster/" + t.ns + "/README.md"
		service := "cluster/" + t.ns + "/core/services/frontend.yaml"
		serviceYAML := "apiVersion: v1\nkind: Service\nmetadata:\n  name: frontend\n  namespace: " + t.ns + "\n"
		human, err := gitSrv.PushAsHuman(t.repo, gitserver.HumanChange{Branch: "main", Files: map[string]string{
			readme: "# What runs here\n", service: serviceYAML}})
		Expect(err).NotTo(HaveOccurred())

		// These were all made while it was down: the watch's initial
		// list hands on none of them, so the reconcile writes them all at
		// once (none is held for a write on its way).
		m.start()
		want := append(selectedPaths(ctx, t), readme, service)
		sort.Strings(want)
		Eventually(t.files).Should(Equal(want))
		Expect(t.file(t.path("", "configmaps", "change-me"))).To(ContainSubstring("k: v2"))
		Expect(t.file(t.path("apps", "deployments", "web"))).To(ContainSubstring("replicas: 3"))
		Expect(t.file(readme)).To(Equal("# What runs here\n"))
		Expect(t.file(service)).To(Equal(serviceYAML))

		since := commitsSince(t, human)
		Expect(since).To(HaveLen(1), "one reconcile commit after the human's")
		Expect(since[0].AuthorName).To(Equal("gitops-reverser"))
		Expect(since[0].Message).To(ContainSubstring("Reverser-Operation: RECONCILE"))
		// added: born-while-down, api; updated: change-me, web; removed:
		// delete-me, relabel-me, worker.
		Expect(since[0].Message).To(ContainSubstring("Reverser-Reconcile: added=2 updated=2 removed=3"))
	})

	It("removes the files of objects deleted while the manager was down after a SIGKILL", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		t.waitActive(ctx, m)
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "stays", "--from-literal=k=v1")
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "goes", "--from-literal=k=v1")
		goes := t.path("", "configmaps", "goes")
		Eventually(t.files).Should(ContainElements(t.path("", "configmaps", "stays"), goes))

		m.kill()
		mustKubectl("alice", "-n", t.ns, "delete", "configmap", "goes")
		m.start()
		Eventually(t.files).ShouldNot(ContainElement(goes))
		Expect(t.files()).To(ContainElement(t.path("", "configmaps", "stays")))
		Expect(t.authorsOf(goes)[0]).To(Equal("gitops-reverser"))
	})
})

// selectedPaths lists the files the target's rule selects: its
// ConfigMaps, Secrets and Deployments without the label recorded=no.
func selectedPaths(ctx context.Context, t target) []string {
	GinkgoHelper()
	var out []string
	selected := func(o metav1.Object) bool { return o.GetLabels()["recorded"] != "no" }
	var cms corev1.ConfigMapList
	Expect(k8s.List(ctx, &cms, client.InNamespace(t.ns))).To(Succeed())
	for i := range cms.Items {
		if selected(&cms.Items[i]) {
			out = append(out, t.path("", "configmaps", cms.Items[i].Name))
		}
	}
	var secrets corev1.SecretList
	Expect(k8s.List(ctx, &secrets, client.InNamespace(t.ns))).To(Succeed())
	for i := range secrets.Items {
		if selected(&secrets.Items[i]) {
			out = append(out, t.path("", "secrets", secrets.Items[i].Name))
		}
	}
	var deps appsv1.DeploymentList
	Expect(k8s.List(ctx, &deps, client.InNamespace(t.ns))).To(Succeed())
	for i := range deps.Items {
		if selected(&deps.Items[i]) {
			out = append(out, t.path("apps", "deployments", deps.Items[i].Name))
		}
	}
	return out
}

func sortedSelectedPaths(ctx context.Context, t target) []string {
	GinkgoHelper()
	out := selectedPaths(ctx, t)
	sort.Strings(out)
	return out
}

// commitsSince returns the commits on main after hash, newest first.
func commitsSince(t target, hash string) []gitserver.Commit {
	var out []gitserver.Commit
	for _, c := range gitSrv.Log(t.repo, "main") {
		if c.Hash == hash {
			return out
		}
		out = append(out, c)
	}
	Fail("commit " + hash + " is not on main")
	return nil
}
