package main

import (
	"os"
	"testing"
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
