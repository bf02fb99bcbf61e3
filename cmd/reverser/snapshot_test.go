package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

// shared is the control plane the package's tests share; TestMain stops it.
var shared struct {
	once sync.Once
	env  *controlplane.Env
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil && code == 0 {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// sharedControlPlane starts the package's control plane once and returns it
// with an administrator's kubeconfig.
func sharedControlPlane(t *testing.T) (*controlplane.Env, string) {
	t.Helper()
	shared.once.Do(func() {
		if shared.env, shared.err = controlplane.Start(); shared.err != nil {
			return
		}
		if shared.dir, shared.err = os.MkdirTemp("", "reverser-cli-"); shared.err != nil {
			return
		}
		shared.err = shared.env.WriteKubeconfig(filepath.Join(shared.dir, "kubeconfig"))
	})
	if shared.err != nil {
		t.Fatalf("control plane: %v", shared.err)
	}
	return shared.env, filepath.Join(shared.dir, "kubeconfig")
}

// snapshotRule selects eight built-in kinds in the namespaces labelled
// snapshot=true and writes them under clusters/snap.
const snapshotRule = `apiVersion: reverser.gitops-reverser.dev/v1alpha1
kind: ClusterWatchRule
metadata:
  name: snapshot
spec:
  targetRef: {name: history, namespace: default}
  namespaceSelector:
    matchLabels: {snapshot: "true"}
  resources:
    - apiGroups: [""]
      resources: [configmaps, secrets, services, serviceaccounts, persistentvolumeclaims]
    - apiGroups: [apps]
      resources: [deployments]
    - apiGroups: [rbac.authorization.k8s.io]
      resources: [roles, rolebindings]
---
apiVersion: reverser.gitops-reverser.dev/v1alpha1
kind: GitTarget
metadata: {name: history, namespace: default}
spec:
  url: https://example.invalid/history.git
  branch: main
  basePath: clusters/snap
`

// snapshotNamespaces are where the generated objects live.
var snapshotNamespaces = []string{"snap-a", "snap-b", "snap-c", "snap-d"}

// generateObjects returns n objects of eight kinds spread over the
// namespaces, as one multi-document YAML, and the namespaces (labelled
// snapshot=true) as another.
func generateObjects(n int) (namespaces, objects string) {
	var ns, b strings.Builder
	for _, name := range snapshotNamespaces {
		fmt.Fprintf(&ns, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {snapshot: \"true\"}}\n", name)
	}
	kinds := []func(ns string, i int) string{
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d, namespace: %s, labels: {app: a%d}}\ndata: {index: \"%d\", greeting: hello}\n", i, ns, i%7, i)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: secret-%d, namespace: %s}\ntype: Opaque\nstringData: {password: s3cr3t-value-%d}\n", i, ns, i)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, namespace: %s}\nspec:\n  selector: {app: a%d}\n  ports: [{port: 80, targetPort: 8080}]\n", i, ns, i%7)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa-%d, namespace: %s}\n", i, ns)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: pvc-%d, namespace: %s}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n", i, ns)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: deploy-%d, namespace: %s}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: d%d}}\n  template:\n    metadata: {labels: {app: d%d}}\n    spec: {containers: [{name: web, image: nginx:1.27}]}\n", i, ns, i, i)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: role-%d, namespace: %s}\nrules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list]}]\n", i, ns)
		},
		func(ns string, i int) string {
			return fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb-%d, namespace: %s}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: role-%d}\nsubjects: [{kind: ServiceAccount, name: sa-%d, namespace: %s}]\n", i, ns, i, i, ns)
		},
	}
	for i := range n {
		ns := snapshotNamespaces[i%len(snapshotNamespaces)]
		b.WriteString("---\n" + kinds[i%len(kinds)](ns, i))
	}
	return ns.String(), b.String()
}

// kubectlRun runs the real kubectl against kubeconfig.
func kubectlRun(t *testing.T, env *controlplane.Env, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := exec.Command(env.Kubectl(), append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 30))
	}
	return string(out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestCLI_snapshot_thousandObjects snapshots 1,000 objects of eight kinds
// into a directory and into a repository on the Git server, then re-applies
// the files with a server-side dry run to a second, fresh control plane.
func TestCLI_snapshot_thousandObjects(t *testing.T) {
	const n = 1000
	env, kubeconfig := sharedControlPlane(t)
	// The fresh control plane starts while the objects are created.
	type started struct {
		env *controlplane.Env
		err error
	}
	freshCh := make(chan started, 1)
	go func() {
		e, err := controlplane.Start()
		freshCh <- started{e, err}
	}()
	t.Cleanup(func() {
		if s := <-freshCh; s.env != nil {
			_ = s.env.Stop()
		}
	})

	namespaces, objects := generateObjects(n)
	kubectlRun(t, env, kubeconfig, "apply", "-f", writeFile(t, "namespaces.yaml", namespaces))
	kubectlRun(t, env, kubeconfig, "create", "-f", writeFile(t, "objects.yaml", objects))
	rule := writeFile(t, "rule.yaml", snapshotRule)

	// Into a directory, with plain progress lines (not a terminal).
	dir := t.TempDir()
	cl, stdout, stderr := newTestCLI(nil)
	cl.restConfig = restConfig
	if code := cl.run(context.Background(), []string{"snapshot", "--rule", rule, "--kubeconfig", kubeconfig, "--dir", dir}); code != 0 {
		t.Fatalf("snapshot --dir: exit %d, stderr: %s", code, stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		fmt.Sprintf("%d files added, 0 updated, 0 unchanged, 0 removed", n),
		"configmaps ", "deployments.apps ", "rolebindings.rbac.authorization.k8s.io ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("snapshot output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\033[") {
		t.Errorf("progress drew on a non-terminal:\n%q", out)
	}
	files := treeFiles(t, dir)
	if len(files) != n {
		t.Fatalf("snapshot wrote %d files, want %d", len(files), n)
	}
	secret, err := os.ReadFile(filepath.Join(dir, "clusters/snap/snap-b/core/secrets/secret-1.yaml"))
	if err != nil {
		t.Fatalf("the Secret's file: %v", err)
	}
	if strings.Contains(string(secret), "s3cr3t") || strings.Contains(string(secret), "czNjcjN0") {
		t.Fatalf("a Secret's value reached the snapshot:\n%s", secret)
	}

	// Into a repository on the Git server: one commit, the same files.
	git := gitserver.New(t)
	url, _ := git.CreateBareRepo("snap.git", "main")
	before := len(git.Log("snap.git", "main"))
	t.Setenv(envGitPassword, git.Password())
	cl, stdout, stderr = newTestCLI(nil)
	cl.restConfig = restConfig
	if code := cl.run(context.Background(), []string{"snapshot", "--rule", rule, "--kubeconfig", kubeconfig,
		"--repo", url, "--branch", "main", "--username", git.Username()}); code != 0 {
		t.Fatalf("snapshot --repo: exit %d, stderr: %s", code, stderr)
	}
	if strings.Contains(stdout.String()+stderr.String(), git.Password()) {
		t.Fatal("the Git password was printed")
	}
	log := git.Log("snap.git", "main")
	if len(log)-before != 1 {
		t.Fatalf("the snapshot made %d commits, want 1", len(log)-before)
	}
	if !strings.HasPrefix(log[0].Message, "Snapshot: added=1000 updated=0 removed=0") {
		t.Errorf("the commit's message is %q", log[0].Message)
	}
	var repoFiles []string
	for _, f := range git.ListFiles("snap.git", "main") {
		if strings.HasPrefix(f, "clusters/snap/") { // the repository's first commit holds a README
			repoFiles = append(repoFiles, f)
		}
	}
	sort.Strings(repoFiles)
	if strings.Join(repoFiles, "\n") != strings.Join(files, "\n") {
		t.Fatalf("the repository's %d files differ from the directory's %d", len(repoFiles), len(files))
	}
	for _, p := range []string{files[0], files[len(files)/2], files[len(files)-1]} {
		inRepo, err := git.ReadFile("snap.git", "main", p)
		if err != nil {
			t.Fatal(err)
		}
		inDir, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if string(inRepo) != string(inDir) {
			t.Errorf("%s differs between the repository and the directory", p)
		}
	}

	// A second snapshot converges: deleted objects' files go, in one more
	// commit; the rest is unchanged.
	kubectlRun(t, env, kubeconfig, "delete", "-n", "snap-a", "configmap/cm-0")
	kubectlRun(t, env, kubeconfig, "delete", "-n", "snap-b", "deployment/deploy-5")
	cl, stdout, stderr = newTestCLI(nil)
	cl.restConfig = restConfig
	if code := cl.run(context.Background(), []string{"snapshot", "--rule", rule, "--kubeconfig", kubeconfig,
		"--repo", url, "--branch", "main", "--username", git.Username()}); code != 0 {
		t.Fatalf("second snapshot --repo: exit %d, stderr: %s", code, stderr)
	}
	if want := fmt.Sprintf("0 files added, 0 updated, %d unchanged, 2 removed", n-2); !strings.Contains(stdout.String(), want) {
		t.Errorf("second snapshot output lacks %q:\n%s", want, stdout)
	}
	if log := git.Log("snap.git", "main"); len(log)-before != 2 {
		t.Errorf("two snapshots made %d commits, want 2", len(log)-before)
	}
	for _, p := range []string{"clusters/snap/snap-a/core/configmaps/cm-0.yaml", "clusters/snap/snap-b/apps/deployments/deploy-5.yaml"} {
		if _, err := git.ReadFile("snap.git", "main", p); err == nil {
			t.Errorf("%s is still in the repository after its object was deleted", p)
		}
	}

	// The files re-apply to a fresh control plane (its namespaces
	// created first: a dry run creates none).
	s := <-freshCh
	freshCh <- s // for the cleanup
	if s.err != nil {
		t.Fatalf("fresh control plane: %v", s.err)
	}
	fresh := s.env
	freshKubeconfig := filepath.Join(t.TempDir(), "fresh-kubeconfig")
	if err := fresh.WriteKubeconfig(freshKubeconfig); err != nil {
		t.Fatal(err)
	}
	kubectlRun(t, fresh, freshKubeconfig, "apply", "-f", writeFile(t, "namespaces.yaml", namespaces))
	applied := kubectlRun(t, fresh, freshKubeconfig, "apply", "--dry-run=server", "-R", "-f", dir)
	if got := strings.Count(applied, "(server dry run)"); got != n {
		t.Fatalf("the dry run applied %d objects, want %d:\n%s", got, n, tail(applied, 10))
	}
}

// treeFiles lists the regular files under dir, slash-separated and sorted.
func treeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestSnapshotProgress_terminalAndPlain(t *testing.T) {
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deps := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	for _, terminal := range []bool{false, true} {
		t.Run(fmt.Sprintf("terminal=%v", terminal), func(t *testing.T) {
			var out bytes.Buffer
			p := newSnapshotProgress(&out, terminal)
			p.Listed(cms, 3)
			p.Rendered(cms)
			p.Rendered(cms)
			p.Listed(deps, 1)
			p.Failed(deps, "ns", "web", errors.New(`sanitizer "strip": Trap`))
			p.done()
			got := out.String()
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if len(lines) != 3 {
				t.Fatalf("%d lines, want one per resource and one failure:\n%q", len(lines), got)
			}
			last := func(l string) string { return l[strings.LastIndex(l, "\r")+1:] }
			for i, want := range []string{"configmaps", "deployments.apps", "failed: deployments.apps ns/web: sanitizer \"strip\": Trap"} {
				if !strings.HasPrefix(strings.TrimPrefix(last(lines[i]), "\033[K"), want) {
					t.Errorf("line %d = %q, want it to start with %q", i, lines[i], want)
				}
			}
			if !strings.Contains(lines[0], "3 listed      2 rendered") {
				t.Errorf("configmaps line %q lacks its counts", lines[0])
			}
			if drawn := strings.Contains(got, "\r\033[K"); drawn != terminal {
				t.Errorf("redrawn in place: %v, want %v:\n%q", drawn, terminal, got)
			}
		})
	}
}
