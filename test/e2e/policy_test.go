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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// ignoreUser is a rule policy that drops the changes of one user.
func ignoreUser(user string) string {
	return fmt.Sprintf(`package reverser

ignore contains "changes by %[1]s are not recorded" if input.userInfo.username == %[1]q
`, user)
}

var _ = Describe("Rego policies", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("skips a service account's edits, reloads an edited policy, and reports a broken one while other rules keep committing", func() {
		bot := ""
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			bot = "system:serviceaccount:" + r.Namespace + ":ci-bot"
			Expect(k8s.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: "policy", Labels: map[string]string{v1alpha1.PolicyLabel: "true"}},
				Data:       map[string]string{"policy.rego": ignoreUser(bot)},
			})).To(Succeed())
			r.Spec.Policy = &v1alpha1.PolicyReference{ConfigMapRef: &v1alpha1.LocalObjectReference{Name: "policy"}}
		})
		other := newFixture(ctx)

		mustKubectl(bot, "-n", f.ns, "create", "configmap", "by-bot", "--from-literal=a=b")
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "by-alice", "--from-literal=a=b")
		Eventually(func() string { return f.file(f.path("", "configmaps", "by-alice")) }).ShouldNot(BeEmpty())
		Expect(gitSrv.ListFiles(f.repo, "main")).NotTo(ContainElement(f.path("", "configmaps", "by-bot")))

		// Stop ignoring the bot: the rule loads the new revision without
		// a restart.
		rule := &v1alpha1.WatchRule{}
		key := client.ObjectKey{Namespace: f.ns, Name: "record"}
		Expect(k8s.Get(ctx, key, rule)).To(Succeed())
		before := rule.Status.PolicyRevision
		Expect(before).NotTo(BeEmpty())
		policy := &corev1.ConfigMap{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "policy"}, policy)).To(Succeed())
		policy.Data["policy.rego"] = ignoreUser("system:serviceaccount:" + f.ns + ":someone-else")
		edited := time.Now()
		Expect(k8s.Update(ctx, policy)).To(Succeed())
		Eventually(func() string {
			Expect(k8s.Get(ctx, key, rule)).To(Succeed())
			return rule.Status.PolicyRevision
		}).ShouldNot(Equal(before))
		// Reported, not asserted: no test fails on wall-clock time.
		fmt.Printf("policy: the edited policy was in force %s after the ConfigMap update\n", time.Since(edited).Round(time.Millisecond))
		mustKubectl(bot, "-n", f.ns, "create", "configmap", "by-bot-later", "--from-literal=a=b")
		Eventually(func() string { return f.file(f.path("", "configmaps", "by-bot-later")) }).ShouldNot(BeEmpty())
		Expect(f.authorsOf(f.path("", "configmaps", "by-bot-later"))).To(Equal([]string{bot}))

		// Without the label the ConfigMap is no policy. The rule is Ready,
		// so nothing but the watch of policy ConfigMaps requeues it: the
		// manager caches only labelled ConfigMaps, and losing the label
		// reaches it as the ConfigMap leaving that selection. With the
		// label back the rule is Ready again.
		mustKubectl("", "-n", f.ns, "label", "configmap", "policy", v1alpha1.PolicyLabel+"-")
		Eventually(ruleCondition(ctx, f.ns)).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", v1alpha1.ReasonPolicyInvalid), HaveField("Message", ContainSubstring("lacks the label"))))
		mustKubectl("", "-n", f.ns, "label", "configmap", "policy", v1alpha1.PolicyLabel+"=true")
		Eventually(ruleCondition(ctx, f.ns)).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionTrue)))

		// A syntax error: the rule says so with the compiler's message,
		// nothing crashes, and the other namespace's rule keeps committing.
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "policy"}, policy)).To(Succeed())
		policy.Data["policy.rego"] = "package reverser\n\nignore contains \"oops\" if {\n  input.userInfo.username ==\n"
		Expect(k8s.Update(ctx, policy)).To(Succeed())
		Eventually(func() *metav1.Condition {
			Expect(k8s.Get(ctx, key, rule)).To(Succeed())
			return meta.FindStatusCondition(rule.Status.Conditions, v1alpha1.ReadyCondition)
		}).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse), HaveField("Reason", v1alpha1.ReasonPolicyInvalid),
			HaveField("Message", ContainSubstring(fmt.Sprintf("configmap/%s/policy/policy.rego:", f.ns)))))
		mustKubectl("alice", "-n", other.ns, "create", "configmap", "still-recorded", "--from-literal=a=b")
		Eventually(func() string { return other.file(other.path("", "configmaps", "still-recorded")) }).ShouldNot(BeEmpty())
		Expect(other.authorsOf(other.path("", "configmaps", "still-recorded"))).To(Equal([]string{"alice"}))
	})

	It("records a change whose policy fails to evaluate, and says so on the rule", func() {
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			// Two values for one label: a conflict only evaluation finds.
			r.Spec.Policy = &v1alpha1.PolicyReference{Inline: "package reverser\n\nlabels[\"team\"] := \"a\" if input.operation\n\nlabels[\"team\"] := \"b\" if input.operation\n"}
		})
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "kept", "--from-literal=a=b")
		Eventually(func() string { return f.file(f.path("", "configmaps", "kept")) }).ShouldNot(BeEmpty())
		Eventually(ruleCondition(ctx, f.ns)).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", "PolicyEvaluationFailed")))
	})
})
