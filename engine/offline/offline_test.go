package offline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
)

func TestDocuments_inputs(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		names []string
	}{
		{name: "one YAML object", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", names: []string{"a"}},
		{name: "several documents and empty ones", in: "---\n# c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n", names: []string{"a", "b"}},
		{name: "a v1 List", in: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: b}}\n", names: []string{"a", "b"}},
		{name: "JSON", in: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}`, names: []string{"a"}},
		{name: "nothing", in: "", names: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Documents([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range docs {
				names = append(names, d.GetName())
			}
			if strings.Join(names, ",") != strings.Join(tt.names, ",") {
				t.Fatalf("names %v, want %v", names, tt.names)
			}
		})
	}
}

func TestDocuments_keepsIntegers(t *testing.T) {
	docs, err := Documents([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := docs[0].Object["spec"].(map[string]any)["replicas"].(int64); !ok || v != 2 {
		t.Fatalf("replicas is %#v, want int64 2", docs[0].Object["spec"].(map[string]any)["replicas"])
	}
}

func TestDocuments_rejects(t *testing.T) {
	for _, in := range []string{"apiVersion: v1\nkind: [\n", "metadata: {name: a}\n"} {
		if _, err := Documents([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestGuessResource_kinds(t *testing.T) {
	rule := v1alpha1.RuleSpec{Resources: []v1alpha1.ResourceSelector{{APIGroups: []string{""}, Resources: []string{"Endpoints"}}}}
	tests := []struct {
		gvk  schema.GroupVersionKind
		want string
	}{
		{gvk: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, want: "deployments"},
		{gvk: schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}, want: "networkpolicies"},
		{gvk: schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, want: "ingresses"},
		{gvk: schema.GroupVersionKind{Version: "v1", Kind: "Endpoints"}, want: "endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.gvk.Kind, func(t *testing.T) {
			if got := guessResource(tt.gvk, rule); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChangeOf_admissionReview(t *testing.T) {
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
"resource":{"group":"","version":"v1","resource":"configmaps"},"namespace":"ns","name":"a","operation":"DELETE",
"userInfo":{"username":"alice","groups":["dev"]},"oldObject":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","uid":"u1"}}}}`
	docs, err := Documents([]byte(review))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ChangeOf(docs[0], v1alpha1.RuleSpec{}, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Operation != v1alpha1.OperationDelete || c.User.Username != "alice" || c.Object == nil || c.Object.GetName() != "a" ||
		c.UID != "u1" || c.Resource.Resource != "configmaps" || c.Namespace != "ns" {
		t.Fatalf("change %+v", c)
	}
	if _, err := ChangeOf(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}},
		v1alpha1.RuleSpec{}, EvalOptions{}); err == nil {
		t.Fatal("a review without a request: no error")
	}
}

func TestDir_applyAndList(t *testing.T) {
	d := Dir(t.TempDir())
	if err := os.MkdirAll(filepath.Join(string(d), ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(d), ".git", "HEAD"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := d.Files("base")
	if err != nil || len(files) != 0 {
		t.Fatalf("a missing base path: %v, %v", files, err)
	}
	ctx := context.Background()
	if _, err := d.Apply(ctx, []gitstore.FileChange{{Path: "base/a/x.yaml", Content: []byte("x: 1\n")}, {Path: "base/b.yaml", Content: []byte("b\n")}}, nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(ctx, nil, []string{"base/b.yaml", "base/gone.yaml"}, ""); err != nil {
		t.Fatal(err)
	}
	files, err = d.Files("")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != "base/a/x.yaml" || files[0].Hash != gitstore.BlobHash([]byte("x: 1\n")) {
		t.Fatalf("files %+v", files)
	}
	if b, ok, err := d.Read("base/a/x.yaml"); err != nil || !ok || string(b) != "x: 1\n" {
		t.Fatalf("read %q %v %v", b, ok, err)
	}
	if _, ok, err := d.Read("base/b.yaml"); err != nil || ok {
		t.Fatalf("a removed file reads: %v %v", ok, err)
	}
}

func TestEval_selection(t *testing.T) {
	ctx := context.Background()
	loader, err := NewLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loader.Close(ctx) })
	ruleDocs, err := Documents([]byte(`apiVersion: reverser.gitops-reverser.dev/v1alpha1
kind: ClusterWatchRule
metadata: {name: r}
spec:
  targetRef: {name: t, namespace: default}
  namespaceSelector: {matchLabels: {record: "true"}}
  operations: [CREATE, DELETE]
  secrets: Skip
  resources: [{apiGroups: [""], resources: [configmaps, secrets]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	in := Inputs{Objects: ruleDocs}
	r, err := loader.Rule(ctx, in.RuleObjects()[0], in, nil)
	if err != nil {
		t.Fatal(err)
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\ndata: {k: v}\n"
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\ndata: {k: dg==}\n"
	tests := []struct {
		name             string
		obj              string
		op               v1alpha1.Operation
		nsLabels         map[string]string
		selected, record bool
		path             string
	}{
		{name: "selected", obj: cm, nsLabels: map[string]string{"record": "true"}, selected: true, record: true, path: "ns/core/configmaps/a.yaml"},
		{name: "namespace not selected", obj: cm, nsLabels: map[string]string{"record": "no"}},
		{name: "operation not recorded", obj: cm, op: v1alpha1.OperationUpdate, nsLabels: map[string]string{"record": "true"}},
		{name: "secrets skipped", obj: secret, nsLabels: map[string]string{"record": "true"}, selected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Documents([]byte(tt.obj))
			if err != nil {
				t.Fatal(err)
			}
			c, err := ChangeOf(docs[0], r.Spec, EvalOptions{Operation: tt.op})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Eval(ctx, c, r, v1alpha1.GitTargetSpec{}, tt.nsLabels)
			if err != nil {
				t.Fatal(err)
			}
			if res.Selected != tt.selected || res.Record != tt.record || res.Path != tt.path {
				t.Fatalf("result %+v", res)
			}
			if !res.Record && len(res.Reasons) == 0 {
				t.Fatal("no reason given for not recording")
			}
		})
	}
}
