package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

var (
	pluginsOnce sync.Once
	pluginsDir  string
	reverserCLI string
)

// buildPlugins builds the example plugins (plugins/build.sh, as `make
// plugins` does), the hostile test module and the reverser CLI, once.
func buildPlugins() {
	pluginsOnce.Do(func() {
		root := controlplane.RepoRoot()
		pluginsDir = filepath.Join(root, "bin", "plugins")
		run := func(cmd *exec.Cmd) {
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), string(out))
		}
		run(exec.Command("bash", "plugins/build.sh", pluginsDir))
		hostile := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", filepath.Join(pluginsDir, "hostile.wasm"), "./test/testdata/wasm/hostile")
		hostile.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		run(hostile)
		reverserCLI = filepath.Join(pluginsDir, "reverser")
		run(exec.Command("go", "build", "-o", reverserCLI, "./cmd/reverser"))
	})
}

// pushModule uploads a module with the reverser CLI, as a user would, and
// returns the source to put in a rule.
func pushModule(ns, name, file string) v1alpha1.ModuleSource {
	wasm, err := os.ReadFile(filepath.Join(pluginsDir, file))
	Expect(err).NotTo(HaveOccurred())
	sum := sha256.Sum256(wasm)
	cmd := exec.Command(reverserCLI, "plugin", "push", filepath.Join(pluginsDir, file), "--name", name, "--namespace", ns, "--kubeconfig", kubeconfig)
	out, err := cmd.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	digest := hex.EncodeToString(sum[:])
	Expect(string(out)).To(ContainSubstring(digest), "the CLI prints the digest to pin")
	return v1alpha1.ModuleSource{ConfigMapRef: &v1alpha1.KeyReference{Name: name, Key: "module.wasm.gz"}, SHA256: digest}
}

func settings(v any) *apiextensionsv1.JSON {
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return &apiextensionsv1.JSON{Raw: b}
}

func ruleCondition(ctx context.Context, ns string) func() *metav1.Condition {
	return func() *metav1.Condition {
		rule := &v1alpha1.WatchRule{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "record"}, rule); err != nil {
			return nil
		}
		return meta.FindStatusCondition(rule.Status.Conditions, v1alpha1.ReadyCondition)
	}
}

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, team: payments, scratch: "yes"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          env:
            - {name: DB_PASSWORD, value: hunter2-do-not-commit}
            - {name: LOG_LEVEL, value: debug}
`

var _ = Describe("WASM plugins", func() {
	var ctx context.Context
	BeforeEach(func() {
		ctx = context.Background()
		buildPlugins()
		// A rule is Ready once its modules have compiled: about 10 s per
		// Go-built module under the race detector, and several times that
		// while the other test packages compile theirs on the same 2 cores.
		SetDefaultEventuallyTimeout(4 * time.Minute)
		DeferCleanup(func() { SetDefaultEventuallyTimeout(defaultEventuallyTimeout) })
	})

	It("puts files where the layout says with the sanitizer's changes, and follows the rule's settings", func() {
		var strip, teams v1alpha1.ModuleSource
		f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			strip = pushModule(r.Namespace, "strip", "strip-sanitizer.wasm")
			teams = pushModule(r.Namespace, "teams", "team-layout.wasm")
			r.Spec.Sanitizers = []v1alpha1.ModuleReference{{Name: "strip", Source: strip,
				Settings: settings(map[string]any{"dropLabels": []string{"scratch"}, "redactEnvPatterns": []string{"(?i)password"}})}}
			r.Spec.Layout = &v1alpha1.ModuleReference{Name: "teams", Source: teams,
				Settings: settings(map[string]any{"label": "team", "fallback": "unowned"})}
		})
		Eventually(ruleCondition(ctx, f.ns)).Should(HaveField("Reason", v1alpha1.ReasonRuleActive))
		cmd := kubectlCmd("alice", "-n", f.ns, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(deploymentYAML)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))

		p := "cluster/teams/payments/" + f.ns + "/deployment/web.yaml"
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("name: web"))
		content := f.file(p)
		Expect(content).NotTo(ContainSubstring("hunter2"))
		Expect(content).To(ContainSubstring("REDACTED"))
		Expect(content).To(ContainSubstring("LOG_LEVEL"))
		Expect(content).NotTo(ContainSubstring("scratch"))
		Expect(f.authorsOf(p)).To(Equal([]string{"alice"}))

		// New settings: keep the scratch label, drop the app label instead
		// (the layout reads the team label, so that one stays).
		rule := &v1alpha1.WatchRule{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "record"}, rule)).To(Succeed())
		rule.Spec.Sanitizers[0].Settings = settings(map[string]any{"dropLabels": []string{"app"}, "redactEnvPatterns": []string{"(?i)password"}})
		Expect(k8s.Update(ctx, rule)).To(Succeed())
		Eventually(func() int64 {
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "record"}, rule)).To(Succeed())
			return rule.Status.ObservedGeneration
		}).Should(Equal(rule.Generation))
		mustKubectl("bob", "-n", f.ns, "scale", "deployment", "web", "--replicas=2")
		Eventually(func() string { return f.file(p) }).Should(ContainSubstring("replicas: 2"))
		var dep appsv1.Deployment
		Expect(yaml.Unmarshal([]byte(f.file(p)), &dep)).To(Succeed())
		Expect(dep.Labels).To(Equal(map[string]string{"team": "payments", "scratch": "yes"}))
		Expect(f.authorsOf(p)[0]).To(Equal("bob"))

		// A new team label moves the object: the file appears at the
		// layout's new path and leaves the old one in the same commit.
		mustKubectl("carol", "-n", f.ns, "label", "deployment", "web", "team=checkout", "--overwrite")
		moved := "cluster/teams/checkout/" + f.ns + "/deployment/web.yaml"
		Eventually(func() string { return f.file(moved) }).Should(ContainSubstring("team: checkout"))
		Expect(f.file(p)).To(BeEmpty())
		Expect(gitSrv.ListFiles(f.repo, "main")).NotTo(ContainElement(p))
		last := f.commitsTouching(moved)[0]
		Expect(last.AuthorName).To(Equal("carol"))
		Expect(f.commitsTouching(p)[0].Hash).To(Equal(last.Hash))
	})

	DescribeTable("contains a hostile module: nothing written, a clear condition, the webhook keeps answering",
		func(role, mode, reason, detail string) {
			f := newFixture(ctx, func(r *v1alpha1.WatchRule) {
				src := pushModule(r.Namespace, "hostile", "hostile.wasm")
				ref := v1alpha1.ModuleReference{Name: "hostile", Source: src, Settings: settings(map[string]any{"mode": mode})}
				if role == "layout" {
					r.Spec.Layout = &ref
				} else {
					r.Spec.Sanitizers = []v1alpha1.ModuleReference{ref}
				}
			})
			const value = "victim-value-Qx7"
			mustKubectl("alice", "-n", f.ns, "create", "configmap", "victim", "--from-literal=a="+value)
			Eventually(ruleCondition(ctx, f.ns)).Should(And(Not(BeNil()),
				HaveField("Status", metav1.ConditionFalse), HaveField("Reason", reason),
				HaveField("Message", And(ContainSubstring(`"hostile"`), MatchRegexp(detail)))))
			// Whatever the module reports, no value of the object reaches the condition.
			Expect(ruleCondition(ctx, f.ns)()).To(HaveField("Message", Not(ContainSubstring(value))))
			waitWebhookCalled(f.ns, true)
			for _, file := range gitSrv.ListFiles(f.repo, "main") {
				Expect(file).NotTo(ContainSubstring("victim"))
			}
			Expect(gitSrv.ListFiles(f.repo, "main")).NotTo(ContainElement(ContainSubstring("passwd")))
		},
		Entry("infinite loop", "sanitizer", "loop", "SanitizerFailed", "Timeout"),
		// On a loaded machine the deadline may stop the growth before the
		// cap does (and the rule's breaker then keeps that reason);
		// engine/plugin's tests pin OutOfMemory itself.
		Entry("memory growth past the cap", "sanitizer", "oom", "SanitizerFailed", "OutOfMemory|Timeout"),
		Entry("trap", "sanitizer", "crash", "SanitizerFailed", "Trap"),
		Entry("output that is not JSON", "sanitizer", "notjson", "SanitizerFailed", "BadOutput"),
		// Writing 100 MB may outlast the deadline on a loaded machine; the
		// size cap itself is pinned by engine/plugin's tests.
		Entry("100 MB output", "sanitizer", "huge", "SanitizerFailed", "OutputTooLarge|Timeout"),
		Entry("layout path ../../etc/passwd", "layout", "escape-path", "LayoutFailed", `etc/passwd`),
		Entry("layout path .git/config", "layout", "git-path", "LayoutFailed", `\.git/config`),
		// The module's own text is kept, its first line, with the object's
		// values (the ConfigMap's data among them) replaced by ***.
		Entry("an error echoing the object", "sanitizer", "echo-error", "SanitizerFailed", `PluginFailed: \{.*"a":"\*\*\*"`),
		Entry("a refused layout path made of the object", "layout", "echo-path", "LayoutFailed", `chose "\.\./\{.*\\"a\\":\\"\*\*\*\\"`),
	)

	It("refuses a module whose bytes do not match the pinned sha256", func() {
		f := newFixtureWaiting(ctx, "False/ModuleInvalid", func(r *v1alpha1.WatchRule) {
			src := pushModule(r.Namespace, "strip", "strip-sanitizer.wasm")
			src.SHA256 = strings.Repeat("0", 64)
			r.Spec.Sanitizers = []v1alpha1.ModuleReference{{Name: "strip", Source: src}}
		})
		Expect(ruleCondition(ctx, f.ns)()).To(HaveField("Message", And(ContainSubstring(`sanitizer "strip"`), ContainSubstring("DigestMismatch"))))
	})
})
