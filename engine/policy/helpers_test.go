package policy

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/policies"
	admissionv1 "k8s.io/api/admission/v1"
)

// defaults returns the shipped default modules.
func defaults(t testing.TB) map[string]string {
	t.Helper()
	mods, err := policies.Defaults()
	if err != nil {
		t.Fatalf("loading default policies: %v", err)
	}
	if len(mods) == 0 {
		t.Fatal("no default policies embedded")
	}
	return mods
}

// withDefaults returns the defaults plus extra modules.
func withDefaults(t testing.TB, extra map[string]string) map[string]string {
	t.Helper()
	all := defaults(t)
	maps.Copy(all, extra)
	return all
}

// compile compiles modules or fails the test.
func compile(t testing.TB, modules map[string]string, opts Options) *Policy {
	t.Helper()
	p, err := Compile(context.Background(), modules, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// deploymentUpdate is testdata/deployment-update.json: a kubectl edit of a
// Deployment's image, as the webhook receives it.
func deploymentUpdate(t testing.TB) *admissionv1.AdmissionRequest {
	t.Helper()
	raw, err := os.ReadFile("testdata/deployment-update.json")
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	var req admissionv1.AdmissionRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("decoding fixture: %v", err)
	}
	return &req
}

// deploymentInput is deploymentUpdate as an Input.
func deploymentInput(t testing.TB) *Input {
	t.Helper()
	in, err := InputFromAdmission(deploymentUpdate(t))
	if err != nil {
		t.Fatalf("InputFromAdmission: %v", err)
	}
	return &in
}

// copyObject deep-copies a decoded JSON object.
func copyObject(t testing.TB, obj map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("encoding object: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decoding object: %v", err)
	}
	return out
}

// testOptions give evaluations a timeout far beyond any real cost, so that
// tests on a loaded machine never fail on the clock.
var testOptions = Options{Timeout: 30 * time.Second}
