package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/offline"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

// evalCLI is this tree's reverser, built into the suite's own folder: the
// shared bin/plugins/reverser may be rebuilt from another checkout while
// the suite runs.
var (
	evalCLIOnce sync.Once
	evalCLI     string
)

func buildEvalCLI() string {
	evalCLIOnce.Do(func() {
		evalCLI = filepath.Join(GinkgoT().TempDir(), "reverser")
		cmd := exec.Command("go", "build", "-o", evalCLI, "./cmd/reverser")
		cmd.Dir = controlplane.RepoRoot()
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
	})
	return evalCLI
}

// evalPolicy drops objects labelled ignore=yes.
const evalPolicy = `package reverser
ignore contains "labelled ignore=yes" if input.object.metadata.labels.ignore == "yes"
`

var _ = Describe("reverser eval", func() {
	var ctx context.Context
	BeforeEach(func() {
		ctx = context.Background()
		buildPlugins()
		// Module compilation under the race detector on a loaded machine
		// (see the WASM plugins specs).
		SetDefaultEventuallyTimeout(4 * time.Minute)
		DeferCleanup(func() { SetDefaultEventuallyTimeout(defaultEventuallyTimeout) })
	})

	It("prints the files the operator commits for the same objects and rule", func() {
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			Expect(k8s.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: "team-policy", Labels: map[string]string{v1alpha1.PolicyLabel: "true"}},
				Data:       map[string]string{"ignore.rego": evalPolicy},
			})).To(Succeed())
			r.Spec.Policy = &v1alpha1.PolicyReference{ConfigMapRef: &v1alpha1.LocalObjectReference{Name: "team-policy"}}
			r.Spec.Sanitizers = []v1alpha1.ModuleReference{{Name: "strip", Source: pushModule(r.Namespace, "strip", "strip-sanitizer.wasm"),
				Settings: settings(map[string]any{"dropLabels": []string{"scratch"}, "redactEnvPatterns": []string{"(?i)password"}})}}
			r.Spec.Layout = &v1alpha1.ModuleReference{Name: "teams", Source: pushModule(r.Namespace, "teams", "team-layout.wasm"),
				Settings: settings(map[string]any{"label": "team", "fallback": "unowned"})}
		})
		mustKubectl("alice", "-n", f.ns, "create", "configmap", "skipped", "--from-literal=a=b")
		mustKubectl("alice", "-n", f.ns, "label", "configmap", "skipped", "ignore=yes")
		mustKubectl("alice", "-n", f.ns, "create", "secret", "generic", "db", "--from-literal=password=hunter2-do-not-commit")
		cmd := kubectlCmd("alice", "-n", f.ns, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(deploymentYAML)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		deployPath := "cluster/teams/payments/" + f.ns + "/deployment/web.yaml"
		Eventually(func() string { return f.file(deployPath) }).Should(ContainSubstring("name: web"))

		// What a user hands to eval: the objects and the rule as the
		// cluster has them, the modules as files.
		dir := GinkgoT().TempDir()
		get := func(name string, args ...string) string {
			return e2ekit.WriteFile(dir, name, mustKubectl("", append([]string{"-n", f.ns, "get", "-o", "yaml"}, args...)...), 0o600)
		}
		objects := get("objects.yaml", "deployment/web", "secret/db", "configmap/skipped")
		rule := get("rule.yaml", "watchrule", e2ekit.RuleName)
		policy := get("policy.yaml", "configmap", "team-policy")
		target := get("target.yaml", "gittarget", e2ekit.GitTargetName)
		eval := exec.Command(buildEvalCLI(), "eval", objects, "--rule", rule, "--policy", policy, "--target", target,
			"--module", "strip="+filepath.Join(pluginsDir, "strip-sanitizer.wasm"),
			"--module", "teams="+filepath.Join(pluginsDir, "team-layout.wasm"),
			"--user", "alice", "--output", "json")
		stdout, err := eval.Output()
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		Expect(err).NotTo(HaveOccurred(), stderr)
		var results []offline.Result
		Expect(json.Unmarshal(stdout, &results)).To(Succeed(), string(stdout))
		Expect(results).To(HaveLen(3))

		byName := map[string]offline.Result{}
		for _, r := range results {
			byName[r.Name] = r
		}
		Expect(byName["web"].Path).To(Equal(deployPath))
		Expect(byName["skipped"].Record).To(BeFalse())
		Expect(byName["skipped"].Reasons).To(ContainElement("labelled ignore=yes"))
		for _, name := range []string{"web", "db"} {
			r := byName[name]
			Expect(r.Record).To(BeTrue(), name)
			Eventually(func() string { return f.file(r.Path) }).Should(Equal(r.YAML), "%s: eval's YAML equals the committed file at %s", name, r.Path)
		}
		Expect(byName["db"].YAML).NotTo(ContainSubstring("hunter2"))
		Expect(byName["web"].YAML).NotTo(ContainSubstring("hunter2"))
		for _, p := range f.kit.Files() {
			Expect(f.file(p)).NotTo(ContainSubstring("name: skipped"), "the policy's ignored ConfigMap has no file")
		}
	})
})
