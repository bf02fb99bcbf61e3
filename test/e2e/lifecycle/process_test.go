package lifecycle

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("The manager as a process", func() {
	It("records alice's change with her as the author, and again after a SIGKILL and a restart", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		t.waitActive(ctx, m)

		mustKubectl("alice", "-n", t.ns, "create", "configmap", "before", "--from-literal=k=v1")
		p := t.path("", "configmaps", "before")
		Eventually(func() []string { return t.authorsOf(p) }).Should(ContainElement("alice"))

		m.kill()
		m.start()
		// Whatever the restart's webhook does, the change itself must
		// arrive: the watch confirms it.
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "after", "--from-literal=k=v2")
		Eventually(func() string { return t.file(t.path("", "configmaps", "after")) }).Should(ContainSubstring("v2"))
	})
})
