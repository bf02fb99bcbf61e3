package main

import (
	"os"
	"testing"

	"github.com/gitops-reverser/gitops-reverser/plugins/sdk"
)

// BenchmarkStrip_native measures the sanitizer outside WASM, for comparison
// with engine/plugin's BenchmarkStripSanitizer_deployment.
func BenchmarkStrip_native(b *testing.B) {
	obj, err := os.ReadFile("../../../test/testdata/wasm/deployment.json")
	if err != nil {
		b.Fatal(err)
	}
	settings := []byte(`{"dropLabels":["pod-template-hash"],"dropAnnotations":["kubectl.kubernetes.io/last-applied-configuration"],"redactEnvPatterns":["(?i)password|token"]}`)
	for b.Loop() {
		if _, err := strip(obj, settings); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStrip_nativeEnvelope(b *testing.B) {
	obj, err := os.ReadFile("../../../test/testdata/wasm/deployment.json")
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(`{"object":` + string(obj) + `,"settings":{"dropLabels":["pod-template-hash"],"dropAnnotations":["kubectl.kubernetes.io/last-applied-configuration"],"redactEnvPatterns":["(?i)password|token"]},"context":{"operation":"UPDATE"}}`)
	for b.Loop() {
		if _, err := sdk.RunSanitize(in, strip); err != nil {
			b.Fatal(err)
		}
	}
}
