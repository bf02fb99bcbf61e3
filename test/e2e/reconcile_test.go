package e2e

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

var _ = Describe("Full reconcile", func() {
	It("writes what a new rule selects that already exists, in one commit by the operator, then attributes later edits", func() {
		ctx := context.Background()
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			for _, name := range []string{"existing-a", "existing-b"} {
				Expect(k8s.Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name},
					Data:       map[string]string{"v": name},
				})).To(Succeed())
			}
		})
		a, b := f.path("", "configmaps", "existing-a"), f.path("", "configmaps", "existing-b")
		Eventually(func() string { return f.file(a) + f.file(b) }).Should(And(ContainSubstring("v: existing-a"), ContainSubstring("v: existing-b")))
		commits := f.commitsTouching(a)
		Expect(commits).To(HaveLen(1))
		Expect(commits[0].AuthorName).To(Equal("gitops-reverser"), commits[0].Message)
		Expect(commits[0].Message).To(ContainSubstring("Reverser-Operation: RECONCILE"))
		// The two ConfigMaps, written just before the rule, are in the
		// watch's initial list (nothing of theirs is on its way): the
		// rule's first reconcile writes them together, and the fixture's
		// Secret too unless an earlier reconcile wrote it.
		Expect(commits[0].Message).To(MatchRegexp(`Reverser-Reconcile: added=[23] updated=0 removed=0`))
		Expect(f.commitsTouching(b)[0].Hash).To(Equal(commits[0].Hash), "one commit holds the whole reconcile")

		mustKubectl("alice", "-n", f.ns, "patch", "configmap", "existing-a", "--type=merge", "-p", `{"data":{"v":"edited"}}`)
		Eventually(func() string { return f.file(a) }).Should(ContainSubstring("v: edited"))
		Expect(f.authorsOf(a)).To(Equal([]string{"alice", "gitops-reverser"}))
	})

	It("removes files of objects that do not exist when a rule starts, and leaves files no rule manages", func() {
		ctx := context.Background()
		var readme, service, stale string
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			readme = "cluster/" + r.Namespace + "/README.md"
			service = "cluster/" + r.Namespace + "/core/services/web.yaml"
			stale = "cluster/" + r.Namespace + "/core/configmaps/never-existed.yaml"
			_, err := gitSrv.PushAsHuman(r.Namespace+".git", gitserver.HumanChange{Branch: "main", Files: map[string]string{
				readme:  "# what runs here\n",
				service: "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: " + r.Namespace + "\n",
				stale:   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: never-existed\n  namespace: " + r.Namespace + "\n",
			}})
			Expect(err).NotTo(HaveOccurred())
		})
		Eventually(func() []string { return gitSrv.ListFiles(f.repo, "main") }).ShouldNot(ContainElement(stale))
		Expect(f.file(readme)).To(Equal("# what runs here\n"))
		Expect(f.file(service)).To(ContainSubstring("kind: Service"))
		last := f.commitsTouching(stale)[0]
		Expect(last.AuthorName).To(Equal("gitops-reverser"))
		// The rule's first reconcile removes the stale file; it also adds
		// the fixture's Secret (in the watch's initial list) when no earlier
		// reconcile did.
		Expect(last.Message).To(MatchRegexp(`Reverser-Reconcile: added=[01] updated=0 removed=1\n`))
	})
})
