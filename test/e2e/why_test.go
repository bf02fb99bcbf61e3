package e2e

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

var _ = Describe("Why-messages", func() {
	It("puts the reason alice gives with a change into its commit body, never into the file", func() {
		ctx := context.Background()
		f := newFixture(ctx)
		manifest := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: pricing
  namespace: %s
  annotations:
    %s: "Friday sale, approved in INC-42"
data:
  discount: "10"
`, f.ns, transform.WhyAnnotation)
		cmd := kubectlCmd("alice", "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))

		p := f.path("", "configmaps", "pricing")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring(`discount: "10"`))
		commits := f.commitsTouching(p)
		Expect(commits).To(HaveLen(1))
		Expect(commits[0].AuthorName).To(Equal("alice"))
		Expect(commits[0].Message).To(ContainSubstring("\n\nWhy: Friday sale, approved in INC-42\n"))
		Expect(f.file(p)).NotTo(ContainSubstring(transform.WhyAnnotation))
		Expect(f.file(p)).NotTo(ContainSubstring("INC-42"), "not even inside last-applied-configuration")

		// A reason alone changes no file, so it makes no commit; bob's
		// next write, which closes alice's session, carries none of it.
		mustKubectl("alice", "-n", f.ns, "annotate", "--overwrite", "configmap", "pricing",
			transform.WhyAnnotation+"=only a reason")
		mustKubectl("bob", "-n", f.ns, "patch", "configmap", "pricing", "--type=merge", "-p", `{"data":{"discount":"20"}}`)
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring(`discount: "20"`))
		Expect(f.authorsOf(p)).To(Equal([]string{"bob", "alice"}))
		Expect(f.commitsTouching(p)[0].Message).NotTo(ContainSubstring("Why:"))
		for _, c := range gitSrv.Log(f.repo, "main") {
			Expect(c.Message).NotTo(ContainSubstring("only a reason"))
		}
		Expect(f.file(p)).NotTo(ContainSubstring(transform.WhyAnnotation))
	})
})
