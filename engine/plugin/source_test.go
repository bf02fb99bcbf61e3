package plugin

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

const testNS = "rules"

// fakeModule returns n random bytes behind the WASM magic; Fetch does not
// need a valid module.
func fakeModule(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random module: %v", err)
	}
	copy(b, "\x00asm\x01\x00\x00\x00")
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return buf.Bytes()
}

func configMap(name, key string, data []byte, chunks ...string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		BinaryData: map[string][]byte{key: data},
	}
	if len(chunks) > 0 {
		cm.Annotations = map[string]string{ChunksAnnotation: strings.Join(chunks, ",")}
	}
	return cm
}

func secret(name, key string, data []byte, chunks ...string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		Data:       map[string][]byte{key: data},
	}
	if len(chunks) > 0 {
		s.Annotations = map[string]string{ChunksAnnotation: strings.Join(chunks, ",")}
	}
	return s
}

// countingReader counts Gets to show what the cache saves.
type countingReader struct {
	client.Reader
	gets atomic.Int64
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets.Add(1)
	return r.Reader.Get(ctx, key, obj, opts...)
}

func newReader(objs ...client.Object) *countingReader {
	return &countingReader{Reader: fake.NewClientBuilder().WithObjects(objs...).Build()}
}

func cmSource(name, key, digest string) v1alpha1.ModuleSource {
	return v1alpha1.ModuleSource{ConfigMapRef: &v1alpha1.KeyReference{Name: name, Key: key}, SHA256: digest}
}

func secretSource(name, key, digest string) v1alpha1.ModuleSource {
	return v1alpha1.ModuleSource{SecretRef: &v1alpha1.KeyReference{Name: name, Key: key}, SHA256: digest}
}

func wantSource(t *testing.T, err error, contains string) {
	t.Helper()
	var se *SourceError
	if !errors.As(err, &se) {
		t.Fatalf("want a *SourceError in %v", err)
	}
	if !strings.Contains(se.Source, contains) {
		t.Fatalf("source %q does not name %q", se.Source, contains)
	}
}

func TestFetcher_Fetch_kubernetesObjects(t *testing.T) {
	small := fakeModule(t, 4096)
	big := fakeModule(t, 300_000)
	bigGz := gzipped(t, big)
	third := len(bigGz) / 3

	tests := []struct {
		name string
		objs []client.Object
		src  v1alpha1.ModuleSource
		want []byte
	}{
		{
			name: "plain binaryData",
			objs: []client.Object{configMap("m", "module.wasm", small)},
			src:  cmSource("m", "module.wasm", digestOf(small)),
			want: small,
		},
		{
			name: "empty key means module.wasm",
			objs: []client.Object{configMap("m", "module.wasm", small)},
			src:  cmSource("m", "", digestOf(small)),
			want: small,
		},
		{
			name: "gzip key",
			objs: []client.Object{configMap("m", "module.wasm.gz", gzipped(t, small))},
			src:  cmSource("m", "module.wasm.gz", digestOf(small)),
			want: small,
		},
		{
			name: "gzip recognised by magic",
			objs: []client.Object{configMap("m", "module", gzipped(t, small))},
			src:  cmSource("m", "module", digestOf(small)),
			want: small,
		},
		{
			name: "chunked over three configmaps",
			objs: []client.Object{
				configMap("m", "module.wasm.gz", bigGz[:third], "m-a", "m-b"),
				configMap("m-a", "module.wasm.gz", bigGz[third:2*third]),
				configMap("m-b", "module.wasm.gz", bigGz[2*third:]),
			},
			src:  cmSource("m", "module.wasm.gz", digestOf(big)),
			want: big,
		},
		{
			name: "secret data",
			objs: []client.Object{secret("s", "module.wasm", small)},
			src:  secretSource("s", "module.wasm", digestOf(small)),
			want: small,
		},
		{
			name: "chunked gzip secret",
			objs: []client.Object{
				secret("s", "module.wasm.gz", bigGz[:third], " s-a , s-b "),
				secret("s-a", "module.wasm.gz", bigGz[third:2*third]),
				secret("s-b", "module.wasm.gz", bigGz[2*third:]),
			},
			src:  secretSource("s", "module.wasm.gz", digestOf(big)),
			want: big,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{Reader: newReader(tt.objs...)}
			got, err := f.Fetch(context.Background(), testNS, tt.src)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Fetch returned %d bytes that differ from the %d-byte module", len(got), len(tt.want))
			}
		})
	}
}

func TestFetcher_Fetch_rejects(t *testing.T) {
	mod := fakeModule(t, 2048)
	digest := digestOf(mod)
	// 8 MiB of zeros gzip to a few KiB: a small bomb for a 1 MiB limit.
	bomb := gzipped(t, make([]byte, 8<<20))
	gz := gzipped(t, mod)
	var tooManyChunks []string
	for range MaxChunks {
		tooManyChunks = append(tooManyChunks, "x")
	}

	tests := []struct {
		name       string
		objs       []client.Object
		src        v1alpha1.ModuleSource
		reason     Reason
		sourceName string
	}{
		{
			name:   "no source",
			src:    v1alpha1.ModuleSource{SHA256: digest},
			reason: ReasonInvalidSource,
		},
		{
			name: "two sources",
			src: v1alpha1.ModuleSource{
				ConfigMapRef: &v1alpha1.KeyReference{Name: "m"},
				URL:          "https://example.com/m.wasm",
				SHA256:       digest,
			},
			reason: ReasonInvalidSource,
		},
		{
			name:   "malformed sha256",
			src:    cmSource("m", "module.wasm", strings.ToUpper(digest)),
			reason: ReasonInvalidSource,
		},
		{
			name:       "missing configmap",
			src:        cmSource("m", "module.wasm", digest),
			reason:     ReasonModuleNotFound,
			sourceName: "configmap rules/m key module.wasm",
		},
		{
			name:       "missing key",
			objs:       []client.Object{configMap("m", "other.wasm", mod)},
			src:        cmSource("m", "module.wasm", digest),
			reason:     ReasonModuleNotFound,
			sourceName: "configmap rules/m",
		},
		{
			name: "module in data instead of binaryData",
			objs: []client.Object{&corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "m"},
				Data:       map[string]string{"module.wasm": "AGFzbQ=="},
			}},
			src:        cmSource("m", "module.wasm", digest),
			reason:     ReasonInvalidSource,
			sourceName: "configmap rules/m",
		},
		{
			name:       "missing secret",
			src:        secretSource("s", "module.wasm", digest),
			reason:     ReasonModuleNotFound,
			sourceName: "secret rules/s",
		},
		{
			name: "missing chunk",
			objs: []client.Object{
				configMap("m", "module.wasm.gz", gz[:100], "m-a"),
			},
			src:        cmSource("m", "module.wasm.gz", digest),
			reason:     ReasonModuleNotFound,
			sourceName: "configmap rules/m",
		},
		{
			name:   "too many chunks",
			objs:   []client.Object{configMap("m", "module.wasm.gz", gz, tooManyChunks...)},
			src:    cmSource("m", "module.wasm.gz", digest),
			reason: ReasonInvalidSource,
		},
		{
			name:       "digest mismatch",
			objs:       []client.Object{configMap("m", "module.wasm", mod)},
			src:        cmSource("m", "module.wasm", digestOf([]byte("something else"))),
			reason:     ReasonDigestMismatch,
			sourceName: "configmap rules/m key module.wasm",
		},
		{
			name:   "gzip bomb",
			objs:   []client.Object{configMap("m", "module.wasm.gz", bomb)},
			src:    cmSource("m", "module.wasm.gz", digest),
			reason: ReasonModuleTooLarge,
		},
		{
			name:   "raw module too large",
			objs:   []client.Object{configMap("m", "module.wasm", make([]byte, 1<<20+1))},
			src:    cmSource("m", "module.wasm", digest),
			reason: ReasonModuleTooLarge,
		},
		{
			name: "chunks add up to too much",
			objs: []client.Object{
				configMap("m", "module.wasm", make([]byte, 600<<10), "m-a"),
				configMap("m-a", "module.wasm", make([]byte, 600<<10)),
			},
			src:    cmSource("m", "module.wasm", digest),
			reason: ReasonModuleTooLarge,
		},
		{
			name:   ".gz key that is not gzip",
			objs:   []client.Object{configMap("m", "module.wasm.gz", mod)},
			src:    cmSource("m", "module.wasm.gz", digest),
			reason: ReasonInvalidSource,
		},
		{
			name:   "truncated gzip",
			objs:   []client.Object{configMap("m", "module.wasm.gz", gz[:len(gz)/2])},
			src:    cmSource("m", "module.wasm.gz", digest),
			reason: ReasonInvalidSource,
		},
		{
			name:       "plain http to a remote host",
			src:        v1alpha1.ModuleSource{URL: "http://example.com/m.wasm", SHA256: digest},
			reason:     ReasonInvalidSource,
			sourceName: "http://example.com/m.wasm",
		},
		{
			name:   "unsupported scheme",
			src:    v1alpha1.ModuleSource{URL: "ftp://example.com/m.wasm", SHA256: digest},
			reason: ReasonInvalidSource,
		},
		{
			name:   "oci reference without tag or digest",
			src:    v1alpha1.ModuleSource{URL: "oci://registry.example.com/m", SHA256: digest},
			reason: ReasonInvalidSource,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{Reader: newReader(tt.objs...), MaxModuleBytes: 1 << 20}
			got, err := f.Fetch(context.Background(), testNS, tt.src)
			wantReason(t, err, tt.reason)
			if got != nil {
				t.Fatalf("Fetch returned %d bytes with its error", len(got))
			}
			if tt.sourceName != "" {
				wantSource(t, err, tt.sourceName)
			}
		})
	}
}

func TestFetcher_Fetch_cachesByDigest(t *testing.T) {
	a, b := fakeModule(t, 1000), fakeModule(t, 1000)
	tests := []struct {
		name          string
		maxCacheBytes int64
		// fetches of module a (by its two sources, which share a digest),
		// then of b, then of a again.
		wantGets int64
	}{
		{name: "both fit: a is read once", maxCacheBytes: 4000, wantGets: 2},
		{name: "room for one: a is evicted by b", maxCacheBytes: 1500, wantGets: 3},
		{name: "cache disabled", maxCacheBytes: -1, wantGets: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReader(configMap("a", "module.wasm", a), configMap("a2", "module.wasm", a), configMap("b", "module.wasm", b))
			f := &Fetcher{Reader: r, MaxCacheBytes: tt.maxCacheBytes}
			ctx := context.Background()
			for _, src := range []v1alpha1.ModuleSource{
				cmSource("a", "module.wasm", digestOf(a)),
				cmSource("a2", "module.wasm", digestOf(a)),
				cmSource("b", "module.wasm", digestOf(b)),
				cmSource("a", "module.wasm", digestOf(a)),
			} {
				got, err := f.Fetch(ctx, testNS, src)
				if err != nil {
					t.Fatalf("Fetch %s: %v", src.ConfigMapRef.Name, err)
				}
				// The caller owns the slice: scribbling on it must not
				// reach the cache.
				got[0] = 0xff
			}
			if n := r.gets.Load(); n != tt.wantGets {
				t.Fatalf("reader Gets = %d, want %d", n, tt.wantGets)
			}
			got, err := f.Fetch(ctx, testNS, cmSource("a", "module.wasm", digestOf(a)))
			if err != nil || !bytes.Equal(got, a) {
				t.Fatalf("refetch of a: err %v, bytes equal %v", err, bytes.Equal(got, a))
			}
		})
	}
}

func TestFetcher_Fetch_concurrentCallersShareOneRead(t *testing.T) {
	mod := fakeModule(t, 50_000)
	r := newReader(configMap("m", "module.wasm.gz", gzipped(t, mod)))
	f := &Fetcher{Reader: r}
	const callers = 16
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f.Fetch(context.Background(), testNS, cmSource("m", "module.wasm.gz", digestOf(mod)))
			if err == nil && !bytes.Equal(got, mod) {
				err = errors.New("bytes differ")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
	}
	if n := r.gets.Load(); n != 1 {
		t.Fatalf("reader Gets = %d, want 1", n)
	}
}

func TestFetcher_Fetch_https(t *testing.T) {
	mod := fakeModule(t, 10_000)
	var requests atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/m.wasm", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(mod) })
	mux.HandleFunc("/m.wasm.gz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(gzipped(t, mod)) })
	mux.HandleFunc("/big.wasm", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, 2<<20)) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)

	tests := []struct {
		name         string
		url          string
		digest       string
		reason       Reason // "" for success
		wantRequests int64
	}{
		{name: "plain", url: srv.URL + "/m.wasm", digest: digestOf(mod), wantRequests: 1},
		{name: "gzip", url: srv.URL + "/m.wasm.gz", digest: digestOf(mod), wantRequests: 1},
		{name: "http on loopback", url: plain.URL + "/m.wasm", digest: digestOf(mod)},
		{name: "not found", url: srv.URL + "/nope.wasm", digest: digestOf(mod), reason: ReasonModuleNotFound, wantRequests: 1},
		{name: "server error", url: srv.URL + "/broken", digest: digestOf(mod), reason: ReasonFetchFailed, wantRequests: 1},
		{name: "too large", url: srv.URL + "/big.wasm", digest: digestOf(mod), reason: ReasonModuleTooLarge, wantRequests: 1},
		{name: "digest mismatch", url: srv.URL + "/m.wasm", digest: digestOf([]byte("x")), reason: ReasonDigestMismatch, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requests.Store(0)
			f := &Fetcher{HTTPClient: srv.Client(), MaxModuleBytes: 1 << 20}
			src := v1alpha1.ModuleSource{URL: tt.url + "?token=s3cr3t", SHA256: tt.digest}
			for range 2 { // the second fetch of a good module comes from the cache
				got, err := f.Fetch(context.Background(), testNS, src)
				if tt.reason != "" {
					wantReason(t, err, tt.reason)
					if strings.Contains(err.Error(), "s3cr3t") {
						t.Fatalf("error leaks the URL's query: %v", err)
					}
					wantSource(t, err, tt.url)
					break
				}
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if !bytes.Equal(got, mod) {
					t.Fatalf("Fetch returned different bytes")
				}
			}
			if n := requests.Load(); n != tt.wantRequests {
				t.Fatalf("TLS server saw %d requests, want %d", n, tt.wantRequests)
			}
		})
	}
}

// testRegistry serves an in-process OCI registry and returns its host:port.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushArtifact pushes an image with the given layers and returns its
// manifest digest.
func pushArtifact(t *testing.T, ref string, layers ...v1.Layer) string {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, OCIConfigMediaType)
	for _, l := range layers {
		var err error
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l}); err != nil {
			t.Fatalf("append layer: %v", err)
		}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatalf("parse %s: %v", ref, err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return d.String()
}

func TestFetcher_Fetch_oci(t *testing.T) {
	host := testRegistry(t)
	mod := fakeModule(t, 20_000)
	digest := pushArtifact(t, host+"/plugins/strip:v1", static.NewLayer(mod, OCILayerMediaType))
	pushArtifact(t, host+"/plugins/gz:v1", static.NewLayer(gzipped(t, mod), "application/wasm"))
	pushArtifact(t, host+"/plugins/multi:v1",
		static.NewLayer([]byte(`{"readme":true}`), "application/json"),
		static.NewLayer(mod, "application/vnd.module.wasm.content.layer.v1+wasm"))
	pushArtifact(t, host+"/plugins/ambiguous:v1",
		static.NewLayer([]byte("a"), "application/octet-stream"),
		static.NewLayer([]byte("b"), "application/octet-stream"))
	pushArtifact(t, host+"/plugins/big:v1", static.NewLayer(make([]byte, 2<<20), OCILayerMediaType))

	tests := []struct {
		name   string
		url    string
		sha    string
		reason Reason
	}{
		{name: "by tag", url: "oci://" + host + "/plugins/strip:v1", sha: digestOf(mod)},
		{name: "by digest", url: "oci://" + host + "/plugins/strip@" + digest, sha: digestOf(mod)},
		{name: "gzip layer", url: "oci://" + host + "/plugins/gz:v1", sha: digestOf(mod)},
		{name: "wasm layer among others", url: "oci://" + host + "/plugins/multi:v1", sha: digestOf(mod)},
		{name: "no wasm layer", url: "oci://" + host + "/plugins/ambiguous:v1", sha: digestOf(mod), reason: ReasonInvalidSource},
		{name: "missing tag", url: "oci://" + host + "/plugins/strip:v2", sha: digestOf(mod), reason: ReasonModuleNotFound},
		{name: "missing repository", url: "oci://" + host + "/plugins/none:v1", sha: digestOf(mod), reason: ReasonModuleNotFound},
		{name: "layer too large", url: "oci://" + host + "/plugins/big:v1", sha: digestOf(mod), reason: ReasonModuleTooLarge},
		{name: "digest mismatch", url: "oci://" + host + "/plugins/strip:v1", sha: digestOf([]byte("x")), reason: ReasonDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{MaxModuleBytes: 1 << 20}
			got, err := f.Fetch(context.Background(), testNS, v1alpha1.ModuleSource{URL: tt.url, SHA256: tt.sha})
			if tt.reason != "" {
				wantReason(t, err, tt.reason)
				wantSource(t, err, tt.url)
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(got, mod) {
				t.Fatalf("Fetch returned different bytes")
			}
		})
	}
}

// TestFetcher_Fetch_realModuleLoads stores a Go-built example plugin the
// way the upload CLI does (gzip, ChunkBytes per ConfigMap) and loads what
// Fetch returns.
func TestFetcher_Fetch_realModuleLoads(t *testing.T) {
	wasm := goPlugin(t, pkgStrip)
	gz := gzipped(t, wasm)
	var objs []client.Object
	var parts []string
	for i := 1; i*ChunkBytes < len(gz); i++ {
		part := "strip-" + string(rune('0'+i))
		parts = append(parts, part)
		objs = append(objs, configMap(part, "module.wasm.gz", gz[i*ChunkBytes:min(len(gz), (i+1)*ChunkBytes)]))
	}
	objs = append(objs, configMap("strip", "module.wasm.gz", gz[:min(len(gz), ChunkBytes)], parts...))
	if len(objs) < 2 {
		t.Logf("the example plugin gzips to %d bytes, one object", len(gz))
	}
	f := &Fetcher{Reader: newReader(objs...)}
	got, err := f.Fetch(context.Background(), testNS, cmSource("strip", "module.wasm.gz", digestOf(wasm)))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, got)
	out, err := m.Sanitize(context.Background(), deployment(t), stripSettings, testCallContext)
	if err != nil {
		t.Fatalf("Sanitize with the fetched module: %v", err)
	}
	if !bytes.HasPrefix(out, []byte("{")) {
		t.Fatalf("Sanitize returned %q", out[:min(len(out), 40)])
	}
}

func TestFetcher_Fetch_digestMismatch_showsDigestOnlyOfURLs(t *testing.T) {
	// A Secret key that is not a module: its digest is a guessing oracle
	// for its value and must not appear; a URL's module digest may.
	password := []byte("hunter2-not-a-module")
	mod := fakeModule(t, 1000)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(mod) }))
	t.Cleanup(srv.Close)
	pinned := digestOf([]byte("what the author pinned"))
	tests := []struct {
		name       string
		src        v1alpha1.ModuleSource
		content    []byte
		showDigest bool
	}{
		{name: "secret key", src: secretSource("db", "password", pinned), content: password},
		{name: "gzipped secret key", src: secretSource("db", "password.gz", pinned), content: password},
		{name: "configmap key", src: cmSource("cm", "module.wasm", pinned), content: password},
		{name: "https URL", src: v1alpha1.ModuleSource{URL: srv.URL + "/m.wasm", SHA256: pinned}, content: mod, showDigest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := secret("db", "password", password)
			s.Data["password.gz"] = gzipped(t, password)
			f := &Fetcher{Reader: newReader(s, configMap("cm", "module.wasm", password)), HTTPClient: srv.Client()}
			_, err := f.Fetch(context.Background(), testNS, tt.src)
			wantReason(t, err, ReasonDigestMismatch)
			msg := err.Error()
			if !strings.Contains(msg, "does not match the pinned digest sha256:"+pinned) {
				t.Errorf("error %q does not name the pinned digest", msg)
			}
			actual := digestOf(tt.content)
			if got := strings.Contains(msg, actual); got != tt.showDigest {
				t.Errorf("error %q shows the content's digest %s: %t, want %t", msg, actual, got, tt.showDigest)
			}
			if gz := digestOf(gzipped(t, tt.content)); strings.Contains(msg, gz) {
				t.Errorf("error %q shows the digest of the compressed content", msg)
			}
		})
	}
}
