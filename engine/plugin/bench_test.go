package plugin

import (
	"context"
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

var stripSettings = []byte(`{"dropLabels":["pod-template-hash"],"dropAnnotations":["kubectl.kubernetes.io/last-applied-configuration"],"redactEnvPatterns":["(?i)password|token"]}`)

// BenchmarkStripSanitizer_deployment is one sanitize call of a 4.4 KB
// Deployment as the API server returns it (with managedFields, status and
// the last-applied annotation) through a warm pool: more than the pipeline
// hands a sanitizer, see BenchmarkStripSanitizer_pipelineInput.
func BenchmarkStripSanitizer_deployment(b *testing.B) {
	benchStrip(b, deployment(b))
}

// benchStrip measures sanitize calls of the strip plugin on obj through a
// warm pool.
func benchStrip(b *testing.B, obj []byte) {
	h := newTestHost(b, Options{})
	m := load(b, h, goPlugin(b, pkgStrip))
	ctx := context.Background()
	b.SetBytes(int64(len(obj)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Sanitize(ctx, obj, stripSettings, testCallContext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStripSanitizer_pipelineInput is one sanitize call of the same
// Deployment as the pipeline hands it to a rule's sanitizers: after the
// built-in sanitizer, encoded by encoding/json.
func BenchmarkStripSanitizer_pipelineInput(b *testing.B) {
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(deployment(b)); err != nil {
		b.Fatal(err)
	}
	clean, err := transform.Sanitize(&u, transform.Options{})
	if err != nil {
		b.Fatal(err)
	}
	obj, err := json.Marshal(clean.Object)
	if err != nil {
		b.Fatal(err)
	}
	benchStrip(b, obj)
}

// BenchmarkDeadline compares the ways of bounding a call, on a light call
// (the strip sanitizer) and a heavy one (a generic encoding/json round trip
// inside the module): "interrupt" (the default, see interrupt.go),
// "context" (wazero's WithCloseOnContextDone) and "none", the unbounded
// baseline, unsafe in production.
func BenchmarkDeadline(b *testing.B) {
	obj := deployment(b)
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		mode deadlineMode
	}{{"interrupt", deadlineInterrupt}, {"context", deadlineContext}, {"none", deadlineNone}} {
		h := newTestHost(b, Options{CacheDir: b.TempDir(), deadline: mode.mode})
		strip := load(b, h, goPlugin(b, pkgStrip))
		heavy := load(b, h, goPlugin(b, pkgHostile))
		b.Run("strip/"+mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := strip.Sanitize(ctx, obj, stripSettings, testCallContext); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("roundtrip/"+mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := heavy.Sanitize(ctx, obj, []byte(`{"mode":"roundtrip"}`), testCallContext); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad_coldCache loads the strip module into a fresh host with an
// empty cache: decode, instrument, compile, instantiate, ABI check.
func BenchmarkLoad_coldCache(b *testing.B) {
	wasm := goPlugin(b, pkgStrip)
	digest := digestOf(wasm)
	ctx := context.Background()
	for b.Loop() {
		h, err := NewHost(ctx, Options{CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		m, err := h.Load(ctx, wasm, digest)
		if err != nil {
			b.Fatal(err)
		}
		m.Release(ctx)
		_ = h.Close(ctx)
	}
}

// BenchmarkLoad_warmCache loads a compiled-before module into a fresh host
// (disk: as after a restart, decode + validate + deserialize from the on-disk
// cache) and into the same host after its last release (memory: the kept
// compiled module); both then instantiate one instance and check the ABI.
func BenchmarkLoad_warmCache(b *testing.B) {
	wasm := goPlugin(b, pkgStrip)
	digest := digestOf(wasm)
	ctx := context.Background()
	dir := b.TempDir()
	warm := newTestHost(b, Options{CacheDir: dir})
	load(b, warm, wasm) // fills the cache
	b.Run("disk", func(b *testing.B) {
		for b.Loop() {
			h, err := NewHost(ctx, Options{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			m, err := h.Load(ctx, wasm, digest)
			if err != nil {
				b.Fatal(err)
			}
			m.Release(ctx)
			_ = h.Close(ctx)
		}
	})
	b.Run("memory", func(b *testing.B) {
		h := newTestHost(b, Options{})
		m, err := h.Load(ctx, wasm, digest) // compiles into the host's cache
		if err != nil {
			b.Fatal(err)
		}
		m.Release(ctx) // last release: the next Load starts from the cache
		for b.Loop() {
			m, err := h.Load(ctx, wasm, digest)
			if err != nil {
				b.Fatal(err)
			}
			m.Release(ctx)
		}
	})
}
