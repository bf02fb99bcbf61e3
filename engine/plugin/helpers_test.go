package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Go-built plugins used by the tests, relative to the repository root.
const (
	pkgStrip   = "plugins/examples/strip-sanitizer"
	pkgTeam    = "plugins/examples/team-layout"
	pkgHostile = "test/testdata/wasm/hostile"
)

var (
	buildDir string
	builds   sync.Map // package -> *pluginBuild
)

type pluginBuild struct {
	once sync.Once
	wasm []byte
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string { return filepath.Join("..", "..") }

// goPlugin builds a Go plugin package once per test process and returns its
// bytes.
func goPlugin(tb testing.TB, pkg string) []byte {
	tb.Helper()
	v, _ := builds.LoadOrStore(pkg, &pluginBuild{})
	b := v.(*pluginBuild)
	b.once.Do(func() {
		out := filepath.Join(buildDir, strings.ReplaceAll(pkg, "/", "_")+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %w\n%s", pkg, err, msg)
			return
		}
		b.wasm, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.wasm
}

func digestOf(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

func newTestHost(tb testing.TB, opts Options) *Host {
	tb.Helper()
	if opts.CacheDir == "" {
		// One on-disk cache for the test process: each Go plugin compiles once.
		opts.CacheDir = filepath.Join(buildDir, "wazero-cache")
	}
	h, err := NewHost(context.Background(), opts)
	if err != nil {
		tb.Fatalf("NewHost: %v", err)
	}
	tb.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func load(tb testing.TB, h *Host, wasm []byte) *Module {
	tb.Helper()
	m, err := h.Load(context.Background(), wasm, digestOf(wasm))
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	tb.Cleanup(func() { m.Release(context.Background()) })
	return m
}

func deployment(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "test", "testdata", "wasm", "deployment.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// generous is a call deadline for calls that must succeed on a loaded machine.
const generous = 30 * time.Second

var testCallContext = CallContext{
	Operation: "UPDATE",
	User:      "alice@example.com",
	Resource:  Resource{Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", Namespace: "shop", Name: "checkout"},
}
