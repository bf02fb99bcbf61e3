package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// pathIn returns the repository path of an object of namespace ns under
// the default layout.
func pathIn(ns, group, resource, name string) string {
	if group == "" {
		group = "core"
	}
	return "cluster/" + ns + "/" + group + "/" + resource + "/" + name + ".yaml"
}

// labelledNamespace creates a namespace carrying the label
// reverser.test/select=<name>, for a ClusterWatchRule that selects only it.
func labelledNamespace(ctx context.Context, name string) {
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"reverser.test/select": name},
	}})).To(Succeed())
}

// newClusterRule creates a ClusterWatchRule that writes to f's GitTarget
// and selects the resources in the namespace ns only; it is deleted when
// the spec ends.
func newClusterRule(ctx context.Context, f fixture, name, ns string, resources []v1alpha1.ResourceSelector) *v1alpha1.ClusterWatchRule {
	rule := &v1alpha1.ClusterWatchRule{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ClusterWatchRuleSpec{
			TargetRef:         v1alpha1.NamespacedObjectReference{Namespace: f.ns, Name: "history"},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"reverser.test/select": ns}},
			RuleSpec:          v1alpha1.RuleSpec{Resources: resources},
		},
	}
	Expect(k8s.Create(ctx, rule)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, rule))).To(Succeed())
	})
	return rule
}

// clusterRuleReady returns the Ready condition of a ClusterWatchRule.
func clusterRuleReady(ctx context.Context, name string) *metav1.Condition {
	rule := &v1alpha1.ClusterWatchRule{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: name}, rule); err != nil {
		return nil
	}
	return meta.FindStatusCondition(rule.Status.Conditions, v1alpha1.ReadyCondition)
}

// lastAuthor returns the author of the newest commit that touched p.
func (f fixture) lastAuthor(p string) string {
	commits := f.commitsTouching(p)
	if len(commits) == 0 {
		return ""
	}
	return commits[0].AuthorName
}

var _ = Describe("Convergence of the live path", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("removes every file of a deleted namespace, each in a commit by the controller that deleted it", func() {
		f := newFixture(ctx)
		doomed := f.ns + "-doomed"
		labelledNamespace(ctx, doomed)
		name := "doomed-" + f.ns
		newClusterRule(ctx, f, name, doomed, []v1alpha1.ResourceSelector{{APIGroups: []string{""}, Resources: []string{"configmaps"}}})
		Eventually(func() *metav1.Condition { return clusterRuleReady(ctx, name) }).Should(
			And(Not(BeNil()), HaveField("Reason", v1alpha1.ReasonRuleActive)))
		Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())
		waitWebhookCalled(doomed, true)

		alice := impersonated("alice")
		const n = 20
		paths := make([]string, n)
		for i := range n {
			Expect(alice.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: doomed, Name: fmt.Sprintf("cm-%02d", i)},
				Data:       map[string]string{"i": fmt.Sprint(i)},
			})).To(Succeed())
			paths[i] = pathIn(doomed, "", "configmaps", fmt.Sprintf("cm-%02d", i))
		}
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).Should(ContainElements(paths))

		// Deleting the Namespace sets its deletionTimestamp; no namespace
		// controller runs here, so the test deletes the contents as the
		// namespace controller and the garbage collector would.
		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: doomed}})).To(Succeed())
		nsController := "system:serviceaccount:kube-system:namespace-controller"
		gc := "system:serviceaccount:kube-system:generic-garbage-collector"
		deleter := func(i int) string {
			if i%4 == 3 {
				return gc
			}
			return nsController
		}
		clients := map[string]client.Client{nsController: impersonated(nsController), gc: impersonated(gc)}
		for i := range n {
			Expect(clients[deleter(i)].Delete(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: doomed, Name: fmt.Sprintf("cm-%02d", i)},
			})).To(Succeed())
		}
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(HavePrefix("cluster/" + doomed + "/")))
		for i, p := range paths {
			Expect(f.lastAuthor(p)).To(Equal(deleter(i)), "the removal of %s", p)
		}
	})

	It("removes the file of an object relabelled out of the rule's selection, in a commit by who relabelled it", func() {
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			r.Spec.LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}
		})
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "web-settings", "--from-literal=a=b")
		mustKubectl("alice", "-n", f.ns, "label", "configmap", "web-settings", "tier=web")
		p := f.path("", "configmaps", "web-settings")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("tier: web"))

		mustKubectl("bob", "-n", f.ns, "label", "--overwrite", "configmap", "web-settings", "tier=batch")
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(p))
		Expect(f.lastAuthor(p)).To(Equal("bob"))
		commit := f.commitsTouching(p)[0]
		Expect(commit.Message).To(ContainSubstring("Reverser-Operation: DELETE"))

		// Back in the selection: written again, by who relabelled it.
		mustKubectl("carol", "-n", f.ns, "label", "--overwrite", "configmap", "web-settings", "tier=web")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("tier: web"))
		Expect(f.lastAuthor(p)).To(Equal("carol"))
	})

	It("removes the files of a namespace relabelled out of a ClusterWatchRule's namespace selector", func() {
		f := newFixture(ctx)
		ns := f.ns + "-moving"
		labelledNamespace(ctx, ns)
		name := "moving-" + f.ns
		newClusterRule(ctx, f, name, ns, []v1alpha1.ResourceSelector{{APIGroups: []string{""}, Resources: []string{"configmaps"}}})
		Eventually(func() *metav1.Condition { return clusterRuleReady(ctx, name) }).Should(
			And(Not(BeNil()), HaveField("Reason", v1alpha1.ReasonRuleActive)))
		Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())
		waitWebhookCalled(ns, true)
		mustKubectl("alice", "-n", ns, "create", "configmap", "settings", "--from-literal=a=b")
		p := pathIn(ns, "", "configmaps", "settings")
		Eventually(func() string { return f.file(p) }).ShouldNot(BeEmpty())

		mustKubectl("bob", "label", "--overwrite", "namespace", ns, "reverser.test/select=elsewhere")
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(p))
		// The webhook does not hear Namespace writes unless a rule records
		// Namespaces: the removal is honestly unknown's.
		Expect(f.lastAuthor(p)).To(Equal("unknown"))
	})

	It("records what a rule can at once, names a missing CRD, and records its objects once the CRD is established", func() {
		f := newFixture(ctx)
		ns := f.ns + "-crd"
		labelledNamespace(ctx, ns)
		group := f.ns + ".reverser.test"
		name := "widgets-" + f.ns
		newClusterRule(ctx, f, name, ns, []v1alpha1.ResourceSelector{
			{APIGroups: []string{group}, Resources: []string{"widgets"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}},
		})
		Eventually(func() *metav1.Condition { return clusterRuleReady(ctx, name) }).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", v1alpha1.ReasonPartiallyActive),
			HaveField("Message", ContainSubstring("widgets."+group))))
		Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())
		waitWebhookCalled(ns, true)
		mustKubectl("alice", "-n", ns, "create", "configmap", "at-once", "--from-literal=a=b")
		cm := pathIn(ns, "", "configmaps", "at-once")
		Eventually(func() string { return f.file(cm) }).ShouldNot(BeEmpty())
		Expect(f.lastAuthor(cm)).To(Equal("alice"))

		crd := &unstructured.Unstructured{Object: map[string]interface{}{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]interface{}{"name": "widgets." + group},
			"spec": map[string]interface{}{
				"group": group,
				"scope": "Namespaced",
				"names": map[string]interface{}{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
				"versions": []interface{}{map[string]interface{}{
					"name": "v1", "served": true, "storage": true,
					"schema": map[string]interface{}{"openAPIV3Schema": map[string]interface{}{
						"type": "object", "x-kubernetes-preserve-unknown-fields": true,
					}},
				}},
			},
		}}
		Expect(k8s.Create(ctx, crd)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { Expect(client.IgnoreNotFound(k8s.Delete(ctx, crd))).To(Succeed()) })
		Eventually(func() bool {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(crd.GroupVersionKind())
			if err := k8s.Get(ctx, client.ObjectKey{Name: crd.GetName()}, got); err != nil {
				return false
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]interface{}); ok && m["type"] == "Established" && m["status"] == "True" {
					return true
				}
			}
			return false
		}).WithPolling(50 * time.Millisecond).Should(BeTrue())
		established := time.Now()

		// The rule records the CRD's resource once the CRD is Established
		// (a watch on CRDs, not a retry). The time it takes is measured
		// and printed, not asserted: a loaded machine stretches it.
		Eventually(func() *metav1.Condition { return clusterRuleReady(ctx, name) }).WithPolling(100 * time.Millisecond).Should(
			And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Reason", v1alpha1.ReasonRuleActive)))
		fmt.Printf("crd: the rule recorded widgets %s after the CRD was Established\n", time.Since(established).Round(time.Millisecond))
		Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())

		widget := func(name string) *unstructured.Unstructured {
			w := &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": group + "/v1", "kind": "Widget",
				"metadata": map[string]interface{}{"name": name, "namespace": ns},
				"spec":     map[string]interface{}{"size": int64(3)},
			}}
			return w
		}
		// The API server reloads webhook configurations asynchronously: a
		// server-side dry run reaches the webhook once it calls it for
		// Widgets, and is dropped there.
		alice := impersonated("alice")
		Eventually(func() bool {
			before := op.AdmissionRequests()
			Expect(alice.Create(ctx, widget("probe"), client.DryRunAll)).To(Succeed())
			return op.AdmissionRequests() > before
		}).Should(BeTrue())
		Expect(alice.Create(ctx, widget("big"))).To(Succeed())
		w := pathIn(ns, group, "widgets", "big")
		Eventually(func() string { return f.file(w) }).Should(ContainSubstring("size: 3"))
		Expect(f.lastAuthor(w)).To(Equal("alice"))
	})
})
