package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/engine/offline"
	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

// sample returns the path of a file under the repository root.
func sample(p string) string { return filepath.Join(controlplane.RepoRoot(), p) }

// writeFile writes content to name in a temporary folder.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const policyRule = `apiVersion: reverser.gitops-reverser.dev/v1alpha1
kind: WatchRule
metadata:
  name: apps
  namespace: default
spec:
  targetRef:
    name: history
  resources:
    - apiGroups: [apps]
      resources: [deployments]
  policy:
    configMapRef:
      name: team-policy
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: team-policy
  namespace: default
  labels:
    reverser.gitops-reverser.dev/policy: "true"
data:
  team.rego: |
    package reverser
    ignore contains "ci-bot's changes are in its own repository" if {
      input.userInfo.username == "ci-bot"
    }
`

func TestCLI_eval_sampleDeployment(t *testing.T) {
	deploy := sample("test/testdata/cli/deployment.yaml")
	rule := sample("config/samples/reverser_v1alpha1_watchrule.yaml")
	target := sample("config/samples/reverser_v1alpha1_gittarget.yaml")
	cl, stdout, stderr := newTestCLI(nil)
	if code := cl.run(context.Background(), []string{"eval", deploy, "--rule", rule, "--target", target}); code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		"# decision: record",
		"# path:     clusters/local/default/apps/deployments/web.yaml",
		"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\n",
		"  replicas: 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The built-in sanitizer's work: what the API server added is gone.
	for _, gone := range []string{"status:", "managedFields", "resourceVersion", "uid:", "creationTimestamp", "last-applied-configuration", "deployment.kubernetes.io/revision"} {
		if strings.Contains(out, gone) {
			t.Errorf("sanitized output still holds %q:\n%s", gone, out)
		}
	}
	doc := out[strings.Index(out, "---\n")+4:]
	var parsed map[string]any
	if err := yaml.Unmarshal([]byte(doc), &parsed); err != nil {
		t.Fatalf("the YAML does not parse: %v\n%s", err, doc)
	}
}

func TestCLI_eval_inputsAndDecisions(t *testing.T) {
	deploy, err := os.ReadFile(sample("test/testdata/cli/deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rule := writeFile(t, "rule.yaml", policyRule)
	deployJSON, err := yaml.YAMLToJSON(deploy)
	if err != nil {
		t.Fatal(err)
	}
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
"kind":{"group":"apps","version":"v1","kind":"Deployment"},"resource":{"group":"apps","version":"v1","resource":"deployments"},
"namespace":"default","name":"web","operation":"UPDATE","userInfo":{"username":"ci-bot"},
"object":` + strings.ReplaceAll(string(deployJSON), `"replicas":2`, `"replicas":3`) + `,"oldObject":` + string(deployJSON) + `}}`
	list := "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(stripComments(string(deploy))), "\n", "\n  ") +
		"\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: other, namespace: default}\n"

	tests := []struct {
		name   string
		object string
		args   []string
		want   []offline.Result
	}{
		{
			name: "a plain object by an unknown user is recorded", object: string(deploy),
			want: []offline.Result{{Selected: true, Record: true, User: "unknown", Operation: "CREATE", Path: "default/apps/deployments/web.yaml"}},
		},
		{
			name: "the policy ignores ci-bot", object: string(deploy),
			args: []string{"--user", "ci-bot", "--operation", "UPDATE"},
			want: []offline.Result{{Selected: true, Record: false, User: "ci-bot", Operation: "UPDATE",
				Reasons: []string{"ci-bot's changes are in its own repository"}}},
		},
		{
			name: "an AdmissionReview brings its user and operation", object: review,
			want: []offline.Result{{Selected: true, Record: false, User: "ci-bot", Operation: "UPDATE",
				Reasons: []string{"ci-bot's changes are in its own repository"}}},
		},
		{
			name: "a v1 List from kubectl get: each item", object: list,
			want: []offline.Result{
				{Selected: true, Record: true, User: "unknown", Operation: "CREATE", Path: "default/apps/deployments/web.yaml"},
				{Selected: false, User: "unknown", Operation: "CREATE", Reasons: []string{"the rule does not select resource configmaps"}},
			},
		},
		{
			name: "a DELETE removes the file without asking the policy", object: string(deploy),
			args: []string{"--operation", "DELETE", "--base-path", "clusters/a"},
			want: []offline.Result{{Selected: true, Record: true, Delete: true, User: "unknown", Operation: "DELETE", Path: "clusters/a/default/apps/deployments/web.yaml"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := writeFile(t, "object", tt.object)
			cl, stdout, stderr := newTestCLI(nil)
			args := append([]string{"eval", obj, "--rule", rule, "--output", "json"}, tt.args...)
			if code := cl.run(context.Background(), args); code != 0 {
				t.Fatalf("exit %d, stderr: %s", code, stderr)
			}
			var got []offline.Result
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d results, want %d:\n%s", len(got), len(tt.want), stdout)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Selected != w.Selected || g.Record != w.Record || g.Delete != w.Delete || g.User != w.User ||
					g.Operation != w.Operation || g.Path != w.Path || strings.Join(g.Reasons, ";") != strings.Join(w.Reasons, ";") {
					t.Errorf("result %d = %+v, want %+v", i, g, w)
				}
				if w.Record && !w.Delete && !strings.Contains(g.YAML, "kind: Deployment") {
					t.Errorf("result %d has no YAML: %q", i, g.YAML)
				}
				if !w.Record && g.YAML != "" {
					t.Errorf("result %d is not recorded but has YAML", i)
				}
			}
		})
	}
}

// stripComments drops the leading comment lines of a YAML file.
func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestCLI_eval_failures(t *testing.T) {
	deploy := sample("test/testdata/cli/deployment.yaml")
	broken := writeFile(t, "rule.yaml", strings.Replace(policyRule, `    ignore contains "ci-bot's changes are in its own repository" if {`,
		`    ignore contains "ci-bot's changes are in its own repository" if {
      input.userInfo.username == undefined_thing`, 1))
	missingPolicy := writeFile(t, "rule.yaml", policyRule[:strings.Index(policyRule, "---")])
	withModule := writeFile(t, "rule.yaml", `apiVersion: reverser.gitops-reverser.dev/v1alpha1
kind: WatchRule
metadata: {name: apps, namespace: default}
spec:
  targetRef: {name: history}
  resources: [{apiGroups: [apps], resources: [deployments]}]
  sanitizers:
    - name: strip
      source: {configMapRef: {name: strip, key: module.wasm.gz}, sha256: "`+strings.Repeat("0", 64)+`"}
`)
	notWasm := writeFile(t, "strip.wasm", "#!/bin/sh\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "broken policy: the compiler's message", args: []string{"eval", deploy, "--rule", broken},
			wantCode: 1, wantErr: "configmap/default/team-policy/team.rego:3:"},
		{name: "broken policy names the undefined reference", args: []string{"eval", deploy, "--rule", broken},
			wantCode: 1, wantErr: "undefined_thing"},
		{name: "policy ConfigMap not given", args: []string{"eval", deploy, "--rule", missingPolicy},
			wantCode: 1, wantErr: `policy ConfigMap "team-policy" not given`},
		{name: "module not given", args: []string{"eval", deploy, "--rule", withModule},
			wantCode: 1, wantErr: "--module strip=FILE.wasm"},
		{name: "broken module: the host's message", args: []string{"eval", deploy, "--rule", withModule, "--module", "strip=" + notWasm},
			wantCode: 1, wantErr: `sanitizer "strip"`},
		{name: "no rule", args: []string{"eval", deploy}, wantCode: exitUsage, wantErr: "--rule"},
		{name: "bad output", args: []string{"eval", deploy, "--rule", broken, "-o", "xml"}, wantCode: exitUsage, wantErr: "--output"},
		{name: "bad operation", args: []string{"eval", deploy, "--rule", broken, "--operation", "PATCH"}, wantCode: exitUsage, wantErr: "--operation"},
		{name: "unknown command", args: []string{"evaluate"}, wantCode: exitUsage, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, stdout, stderr := newTestCLI(nil)
			if code := cl.run(context.Background(), tt.args); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr)
			}
			if stdout.Len() != 0 {
				t.Fatalf("a failed command printed %q", stdout)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("stderr %q does not mention %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestCLI_run_versionAndCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"version"}, want: "reverser dev (commit "},
		{args: []string{"completion", "bash"}, want: "__start_reverser"},
		{args: []string{"completion", "zsh"}, want: "#compdef reverser"},
		{args: []string{"completion", "fish"}, want: "complete -c reverser"},
		{args: []string{"--help"}, want: "snapshot"},
		{args: []string{"eval", "--help"}, want: "--output"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cl, stdout, stderr := newTestCLI(nil)
			if code := cl.run(context.Background(), tt.args); code != 0 {
				t.Fatalf("exit %d, stderr: %s", code, stderr)
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, stdout)
			}
		})
	}
}
