package e2ekit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Kubectl is the real kubectl binary with the kubeconfig of a suite's
// control plane.
type Kubectl struct {
	// Bin is the path of the kubectl binary.
	Bin string
	// Kubeconfig is the path of the kubeconfig file kubectl uses.
	Kubeconfig string
}

// Run runs kubectl as user (impersonated, in the group system:masters; ""
// for the admin) and returns its combined output.
func (k Kubectl) Run(user string, args ...string) (string, error) {
	full := []string{"--kubeconfig", k.Kubeconfig}
	if user != "" {
		full = append(full, "--as", user, "--as-group", "system:masters")
	}
	out, err := exec.Command(k.Bin, append(full, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Must runs kubectl like Run and fails the spec, with kubectl's output,
// when kubectl fails.
func (k Kubectl) Must(user string, args ...string) string {
	GinkgoHelper()
	out, err := k.Run(user, args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl %s: %s", strings.Join(args, " "), out)
	return out
}

// WaitWebhookCalled waits until a server-side dry-run create of a ConfigMap
// in ns does (called true) or does not (called false) reach the webhook,
// as told by requests, the manager's count of admission requests. The API
// server reloads webhook configurations asynchronously; the webhook drops
// dry runs, so the probe records nothing.
func WaitWebhookCalled(k Kubectl, ns string, requests func() float64, called bool) {
	GinkgoHelper()
	Eventually(func() bool {
		before := requests()
		out, err := k.Run("", "-n", ns, "create", "configmap", "probe", "--from-literal=a=b", "--dry-run=server")
		Expect(err).NotTo(HaveOccurred(), out)
		return (requests() > before) == called
	}).Should(BeTrue())
}

// Tail returns the last lines lines of s.
func Tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// WriteFile writes content to the file name in dir with perm and returns
// its path; it fails the spec when it cannot.
func WriteFile(dir, name, content string, perm os.FileMode) string {
	GinkgoHelper()
	p := filepath.Join(dir, name)
	Expect(os.WriteFile(p, []byte(content), perm)).To(Succeed())
	return p
}
