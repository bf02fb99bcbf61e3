package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest, as far as these specs read it.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

// objects parses a multi-document YAML stream, skipping empty documents.
func objects(stream string) []object {
	GinkgoHelper()
	var out []object
	for _, doc := range strings.Split("\n"+stream, "\n---") {
		var o object
		Expect(yaml.Unmarshal([]byte(doc), &o)).To(Succeed(), doc)
		if o.Kind != "" {
			out = append(out, o)
		}
	}
	return out
}

func kinds(objs []object) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.Kind)
	}
	return out
}

// dryRun applies the manifests server-side with --dry-run=server: the API
// server validates every object against its schema (the CRDs' too) and
// runs admission, and nothing is stored. It returns kubectl's output.
func dryRun(name, manifests string, count int) {
	GinkgoHelper()
	out := kubectl.Must("", "apply", "--server-side", "--dry-run=server", "-f", writeTemp(name, manifests))
	Expect(out).NotTo(ContainSubstring("Warning"))
	Expect(strings.Count(out, "(server dry run)")).To(Equal(count), out)
}

var _ = Describe("The Helm chart", func() {
	chart := filepath.Join(root, "charts", "gitops-reverser")
	allOptions := filepath.Join(chart, "ci", "all-options-values.yaml")
	base := []string{"CustomResourceDefinition", "ServiceAccount", "Deployment", "Service", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
	optional := []string{"NetworkPolicy", "PrometheusRule", "ServiceMonitor", "ConfigMap"}

	DescribeTable("lints, renders and applies cleanly to the API server (dry run)",
		func(values []string, want, absent []string) {
			lint := []string{"lint", "--strict", chart}
			render := []string{"template", "gitops-reverser", chart, "-n", releaseNamespace, "--include-crds"}
			for _, v := range values {
				lint, render = append(lint, "-f", v), append(render, "-f", v)
			}
			Expect(run(helm, lint...)).To(ContainSubstring("0 chart(s) failed"))
			rendered := run(helm, render...)
			objs := objects(rendered)
			Expect(kinds(objs)).To(ContainElements(want))
			for _, k := range absent {
				Expect(kinds(objs)).NotTo(ContainElement(k))
			}
			dryRun("chart.yaml", rendered, len(objs))
		},
		Entry("with default values", nil, base, optional),
		Entry("with every optional part on", []string{allOptions}, append(append([]string{}, base...), optional...), nil),
	)

	It("ships the dashboard as a ConfigMap Grafana's sidecar loads", func() {
		rendered := run(helm, "template", "gitops-reverser", chart, "-n", releaseNamespace, "--set", "dashboard.enabled=true")
		var found bool
		for _, o := range objects(rendered) {
			if o.Kind != "ConfigMap" {
				continue
			}
			found = true
			Expect(o.Metadata.Labels).To(HaveKeyWithValue("grafana_dashboard", "1"))
			var dash struct {
				UID    string            `json:"uid"`
				Panels []json.RawMessage `json:"panels"`
			}
			Expect(json.Unmarshal([]byte(o.Data["gitops-reverser.json"]), &dash)).To(Succeed())
			Expect(dash.UID).To(Equal("gitops-reverser"))
			Expect(dash.Panels).NotTo(BeEmpty())
		}
		Expect(found).To(BeTrue(), "no ConfigMap rendered:\n%s", rendered)
	})
})

var _ = Describe("The kustomize base (make deploy)", func() {
	It("sets the manager image to IMG and applies cleanly to the API server (dry run)", func() {
		img := "registry.example.com/platform/gitops-reverser:v9.8.7"
		withIMG := makeTarget("deploy-manifests", "IMG="+img)
		Expect(withIMG).To(ContainSubstring("image: " + img))
		Expect(withIMG).NotTo(ContainSubstring("ghcr.io/gitops-reverser/gitops-reverser"))

		plain := run(env.Kubectl(), "kustomize", "config/default")
		Expect(kinds(objects(withIMG))).To(Equal(kinds(objects(plain))), "deploy applies what kustomize build config/default renders")
		Expect(kinds(objects(plain))).To(ContainElements("Namespace", "CustomResourceDefinition", "Deployment", "Service", "ClusterRole"))
		dryRun("kustomize.yaml", withIMG, len(objects(withIMG)))
	})
})

// makeTarget runs `make -s target args...` in the repository root as a
// user would, without the MAKEFLAGS of a `make test` that runs this suite,
// and returns its standard output.
func makeTarget(target string, args ...string) string {
	GinkgoHelper()
	cmd := exec.Command("make", append([]string{"-s", "--no-print-directory", target}, args...)...)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "make %s:\n%s\n%s", target, out, stderr.String())
	return string(out)
}
