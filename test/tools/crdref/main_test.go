package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	crdDir    = "../../../config/crd/bases"
	reference = "../../../docs/reference/crds.md"
)

// TestRender_referenceIsCurrent fails when docs/reference/crds.md differs
// from what the CRDs give: a type changed without `make docs`.
func TestRender_referenceIsCurrent(t *testing.T) {
	got, err := Render(crdDir)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	want, err := os.ReadFile(reference)
	if err != nil {
		t.Fatalf("reading the committed reference: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/reference/crds.md is stale: run `make docs` (after `make manifests`) and commit it")
	}
}

func TestRender_everyKindAndField(t *testing.T) {
	got, err := Render(crdDir)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	doc := string(got)
	for _, want := range []string{
		"## GitTarget", "## WatchRule", "## ClusterWatchRule",
		"| `spec.url` | string | yes |", "| `spec.resources[].resources` | []string | yes |",
		"Pattern: `^[a-f0-9]{64}$`", "| `status.conditions` |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}

func TestRender_errors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
	}{
		{name: "no CRDs", files: nil},
		{name: "not a CRD", files: map[string]string{"x.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\nbogus: 1\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Render(dir); err == nil {
				t.Fatalf("Render of %v succeeded, want an error", tt.files)
			}
		})
	}
}
