package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
)

const testNS = "team-a"

// module returns n random (incompressible) bytes behind the WASM header, so
// its gzip is about n bytes and n controls the number of chunks.
func module(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random module: %v", err)
	}
	copy(b, "\x00asm\x01\x00\x00\x00")
	return b
}

func fetch(t *testing.T, r client.Reader, src v1alpha1.ModuleSource) []byte {
	t.Helper()
	f := &plugin.Fetcher{Reader: r, MaxCacheBytes: -1}
	got, err := f.Fetch(context.Background(), testNS, src)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return got
}

// moduleObjects lists the names of the objects labelled with the module.
func moduleObjects(t *testing.T, c client.Client, secret bool, moduleName string) []string {
	t.Helper()
	var names []string
	opts := []client.ListOption{client.InNamespace(testNS), client.MatchingLabels{plugin.ModuleLabel: moduleName}}
	if secret {
		var l corev1.SecretList
		if err := c.List(context.Background(), &l, opts...); err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	} else {
		var l corev1.ConfigMapList
		if err := c.List(context.Background(), &l, opts...); err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestPushToCluster_roundTrip(t *testing.T) {
	tests := []struct {
		name        string
		size        int
		secret      bool
		wantObjects int
	}{
		{name: "small configmap", size: 64 << 10, wantObjects: 1},
		{name: "chunked configmap", size: 2_500_000, wantObjects: 3},
		{name: "chunked secret", size: 1_000_000, secret: true, wantObjects: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().Build()
			wasm := module(t, tt.size)
			report, err := pushToCluster(context.Background(), c,
				clusterPush{Namespace: testNS, Name: "strip", Secret: tt.secret}, wasm)
			if err != nil {
				t.Fatalf("pushToCluster: %v", err)
			}
			if got := moduleObjects(t, c, tt.secret, "strip"); len(got) != tt.wantObjects {
				t.Fatalf("objects %v, want %d", got, tt.wantObjects)
			}
			if len(report.Objects) != tt.wantObjects || report.Objects[0] != "strip" {
				t.Fatalf("report lists %v", report.Objects)
			}
			if report.Source.SHA256 != sha256Hex(wasm) {
				t.Fatalf("source pins %s, want %s", report.Source.SHA256, sha256Hex(wasm))
			}
			if got := fetch(t, c, report.Source); !bytes.Equal(got, wasm) {
				t.Fatal("fetched module differs from the pushed one")
			}
		})
	}
}

func TestPushToCluster_repush_replacesChunks(t *testing.T) {
	c := fake.NewClientBuilder().Build()
	ctx := context.Background()
	p := clusterPush{Namespace: testNS, Name: "strip"}

	steps := []struct {
		size        int
		wantObjects int
		wantStale   int
	}{
		{size: 2_000_000, wantObjects: 3},
		{size: 2_000_000, wantObjects: 3, wantStale: 2}, // a different module of the same size
		{size: 10_000, wantObjects: 1, wantStale: 2},
		{size: 1_000_000, wantObjects: 2},
	}
	for i, step := range steps {
		wasm := module(t, step.size)
		report, err := pushToCluster(ctx, c, p, wasm)
		if err != nil {
			t.Fatalf("step %d: pushToCluster: %v", i, err)
		}
		if got := moduleObjects(t, c, false, "strip"); len(got) != step.wantObjects {
			t.Fatalf("step %d: objects %v, want %d", i, got, step.wantObjects)
		}
		if len(report.Stale) != step.wantStale {
			t.Fatalf("step %d: deleted %v, want %d", i, report.Stale, step.wantStale)
		}
		if got := fetch(t, c, report.Source); !bytes.Equal(got, wasm) {
			t.Fatalf("step %d: fetched module differs from the pushed one", i)
		}
	}
	var head corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: testNS, Name: "strip"}, &head); err != nil {
		t.Fatalf("get head: %v", err)
	}
	if got := strings.Count(head.Annotations[plugin.ChunksAnnotation], ",") + 1; got != 1 {
		t.Fatalf("head lists %d chunks, want 1: %q", got, head.Annotations[plugin.ChunksAnnotation])
	}
}

func TestPushToCluster_rejects(t *testing.T) {
	wasm := module(t, 100)
	tests := []struct {
		name string
		p    clusterPush
		wasm []byte
	}{
		{name: "no namespace", p: clusterPush{Name: "strip"}, wasm: wasm},
		{name: "bad name", p: clusterPush{Namespace: testNS, Name: "Strip_Plugin"}, wasm: wasm},
		{name: "name too long for a label", p: clusterPush{Namespace: testNS, Name: strings.Repeat("a", 64)}, wasm: wasm},
		{name: "bad key", p: clusterPush{Namespace: testNS, Name: "strip", Key: "a/b"}, wasm: wasm},
		{name: "empty module", p: clusterPush{Namespace: testNS, Name: "strip"}, wasm: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().Build()
			if _, err := pushToCluster(context.Background(), c, tt.p, tt.wasm); err == nil {
				t.Fatal("pushToCluster succeeded")
			}
			var l corev1.ConfigMapList
			if err := c.List(context.Background(), &l); err != nil || len(l.Items) != 0 {
				t.Fatalf("a rejected push wrote %d objects (list error %v)", len(l.Items), err)
			}
		})
	}
}

func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPushToOCI_roundTrip(t *testing.T) {
	host := testRegistry(t)
	wasm := module(t, 300_000)
	src, err := pushToOCI(context.Background(), "oci://"+host+"/plugins/strip:v1", wasm, true)
	if err != nil {
		t.Fatalf("pushToOCI: %v", err)
	}
	if !strings.HasPrefix(src.URL, "oci://"+host+"/plugins/strip@sha256:") {
		t.Fatalf("source URL %q is not pinned by digest", src.URL)
	}
	if got := fetch(t, nil, src); !bytes.Equal(got, wasm) {
		t.Fatal("fetched module differs from the pushed one")
	}

	// Other tools recognise the artifact by its media types and platform.
	ref, err := name.ParseReference(host + "/plugins/strip:v1")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Config.MediaType != plugin.OCIConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != plugin.OCILayerMediaType {
		t.Fatalf("manifest config %s, layers %v", m.Config.MediaType, m.Layers)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.OS != "wasip1" || cfg.Architecture != "wasm" {
		t.Fatalf("platform %s/%s, want wasip1/wasm", cfg.OS, cfg.Architecture)
	}
}

func TestPushToOCI_rejects(t *testing.T) {
	host := testRegistry(t)
	tests := []struct {
		name string
		ref  string
		wasm []byte
	}{
		{name: "not oci scheme", ref: "https://" + host + "/plugins/strip:v1", wasm: []byte("\x00asm")},
		{name: "bad reference", ref: "oci://" + host + "/Plugins/UPPER:v1", wasm: []byte("\x00asm")},
		{name: "empty module", ref: "oci://" + host + "/plugins/strip:v1", wasm: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pushToOCI(context.Background(), tt.ref, tt.wasm, false); err == nil {
				t.Fatal("pushToOCI succeeded")
			}
		})
	}
}

func writeModule(t *testing.T, wasm []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatalf("write module: %v", err)
	}
	return path
}

func newTestCLI(c client.Client) (*cli, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &cli{
		stdout: &stdout,
		stderr: &stderr,
		newClient: func(string) (client.Client, string, error) {
			if c == nil {
				return nil, "", errors.New("no cluster in this test")
			}
			return c, testNS, nil
		},
	}, &stdout, &stderr
}

func TestCLI_run_pushAndDigest(t *testing.T) {
	wasm := module(t, 1_200_000)
	path := writeModule(t, wasm)
	host := testRegistry(t)

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c client.Client, out string)
	}{
		{
			name: "digest",
			args: []string{"plugin", "digest", path},
			check: func(t *testing.T, _ client.Client, out string) {
				if out != sha256Hex(wasm)+"\n" {
					t.Fatalf("digest printed %q", out)
				}
			},
		},
		{
			name: "push to configmap, flags after the file",
			args: []string{"plugin", "push", path, "--name", "strip"},
			check: func(t *testing.T, c client.Client, out string) {
				src := parseSnippet(t, out)
				if src.ConfigMapRef == nil || src.ConfigMapRef.Name != "strip" || src.ConfigMapRef.Key != defaultPushKey {
					t.Fatalf("snippet %q", out)
				}
				if got := fetch(t, c, src); !bytes.Equal(got, wasm) {
					t.Fatal("fetched module differs from the pushed one")
				}
			},
		},
		{
			name: "push to secret with a key",
			args: []string{"plugin", "push", "--secret", "--key", "strip.wasm.gz", "--name", "strip", path},
			check: func(t *testing.T, c client.Client, out string) {
				src := parseSnippet(t, out)
				if src.SecretRef == nil || src.SecretRef.Key != "strip.wasm.gz" {
					t.Fatalf("snippet %q", out)
				}
				if got := fetch(t, c, src); !bytes.Equal(got, wasm) {
					t.Fatal("fetched module differs from the pushed one")
				}
			},
		},
		{
			name: "push to a registry",
			args: []string{"plugin", "push", path, "--oci", "oci://" + host + "/plugins/strip:v1"},
			check: func(t *testing.T, _ client.Client, out string) {
				src := parseSnippet(t, out)
				if !strings.HasPrefix(src.URL, "oci://"+host+"/plugins/strip@sha256:") {
					t.Fatalf("snippet %q", out)
				}
				if got := fetch(t, nil, src); !bytes.Equal(got, wasm) {
					t.Fatal("fetched module differs from the pushed one")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().Build()
			cl, stdout, stderr := newTestCLI(c)
			if code := cl.run(context.Background(), tt.args); code != 0 {
				t.Fatalf("exit %d, stderr: %s", code, stderr)
			}
			tt.check(t, c, stdout.String())
		})
	}
}

func parseSnippet(t *testing.T, out string) v1alpha1.ModuleSource {
	t.Helper()
	var snippet struct {
		Source v1alpha1.ModuleSource `json:"source"`
	}
	if err := yaml.UnmarshalStrict([]byte(out), &snippet); err != nil {
		t.Fatalf("snippet %q does not parse: %v", out, err)
	}
	return snippet.Source
}

func TestCLI_run_rejects(t *testing.T) {
	wasmPath := writeModule(t, module(t, 100))
	notWasm := writeModule(t, []byte("#!/bin/sh\n"))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no command", args: nil, wantCode: exitUsage},
		{name: "unknown command", args: []string{"plugin", "pull"}, wantCode: exitUsage, wantErr: "unknown command"},
		{name: "push without name", args: []string{"plugin", "push", wasmPath}, wantCode: exitUsage, wantErr: "--name"},
		{name: "push two files", args: []string{"plugin", "push", wasmPath, wasmPath, "--name", "x"}, wantCode: exitUsage, wantErr: "exactly one"},
		{name: "oci with name", args: []string{"plugin", "push", wasmPath, "--name", "x", "--oci", "oci://r/x:v1"}, wantCode: exitUsage, wantErr: "cannot be combined"},
		{name: "insecure without oci", args: []string{"plugin", "push", wasmPath, "--name", "x", "--insecure"}, wantCode: exitUsage, wantErr: "--insecure"},
		{name: "unknown flag", args: []string{"plugin", "push", wasmPath, "--nmae", "x"}, wantCode: exitUsage, wantErr: "nmae"},
		{name: "missing file", args: []string{"plugin", "digest", filepath.Join(t.TempDir(), "none.wasm")}, wantCode: 1, wantErr: "reading module"},
		{name: "not a wasm file", args: []string{"plugin", "push", notWasm, "--name", "x"}, wantCode: 1, wantErr: "not a WebAssembly module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, stdout, stderr := newTestCLI(fake.NewClientBuilder().Build())
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

// TestCLI_run_realAPIServer pushes through a kubeconfig to a real
// kube-apiserver, whose object size limit the chunking exists for.
func TestCLI_run_realAPIServer(t *testing.T) {
	env, kubeconfig := sharedControlPlane(t)
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}

	// The limit itself: a chunk fits, one byte over 1 MiB does not.
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{name: "chunk-sized", size: plugin.ChunkBytes, ok: true},
		{name: "over-limit", size: 1<<20 + 1, ok: false},
	} {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: tc.name},
			BinaryData: map[string][]byte{"module.wasm.gz": make([]byte, tc.size)},
		}
		err := c.Create(ctx, cm)
		if (err == nil) != tc.ok {
			t.Fatalf("creating a ConfigMap of %d bytes: err %v, want success %v", tc.size, err, tc.ok)
		}
	}

	for _, secret := range []bool{false, true} {
		wasm := module(t, 2_500_000)
		args := []string{"plugin", "push", writeModule(t, wasm), "--name", "strip", "--namespace", testNS, "--kubeconfig", kubeconfig}
		if secret {
			args = append(args, "--secret")
		}
		cl, stdout, stderr := newTestCLI(nil)
		cl.newClient = kubeClient
		if code := cl.run(ctx, args); code != 0 {
			t.Fatalf("secret=%v: exit %d, stderr: %s", secret, code, stderr)
		}
		if !strings.Contains(stderr.String(), "and 2 chunk objects") {
			t.Fatalf("secret=%v: stderr %q does not report 2 chunk objects", secret, stderr)
		}
		if got := fetch(t, c, parseSnippet(t, stdout.String())); !bytes.Equal(got, wasm) {
			t.Fatalf("secret=%v: fetched module differs from the pushed one", secret)
		}
	}
}
