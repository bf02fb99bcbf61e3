package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func wantReason(t *testing.T, err error, want Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got none", want)
	}
	var pe *PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("want *PluginError, got %T: %v", err, err)
	}
	if pe.Reason != want {
		t.Fatalf("reason = %s, want %s (error: %v)", pe.Reason, want, err)
	}
}

func TestHost_Load_rejectsBadModules(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	good := tinyModule(1, body(i64Const(0)))
	cases := []struct {
		name   string
		wasm   []byte
		digest string
		want   Reason
		msg    string
	}{
		{name: "digest mismatch", wasm: good, digest: strings.Repeat("ab", 32), want: ReasonDigestMismatch, msg: "pinned"},
		{name: "empty digest", wasm: good, digest: "", want: ReasonDigestMismatch},
		{name: "not wasm", wasm: []byte("definitely not wasm"), want: ReasonInvalidModule},
		{name: "no memory export", wasm: buildWasm(false, nil, []wasmFunc{
			{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(1))},
			{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(0))},
			{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: body(i64Const(0))},
		}), want: ReasonMissingExport, msg: `"memory"`},
		{name: "no alloc", wasm: buildWasm(true, nil, []wasmFunc{
			{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(1))},
			{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: body(i64Const(0))},
		}), want: ReasonMissingExport, msg: `"alloc"`},
		{name: "no abi version", wasm: buildWasm(true, nil, []wasmFunc{
			{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(0))},
			{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: body(i64Const(0))},
		}), want: ReasonMissingExport, msg: "reverser_abi_version"},
		{name: "neither sanitize nor layout", wasm: buildWasm(true, nil, []wasmFunc{
			{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(1))},
			{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(0))},
		}), want: ReasonMissingExport, msg: "neither"},
		{name: "sanitize returns i32", wasm: buildWasm(true, nil, []wasmFunc{
			{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(1))},
			{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(0))},
			{name: "sanitize", params: []byte{i32, i32}, results: []byte{i32}, body: body(i32Const(0))},
		}), want: ReasonMissingExport, msg: "signature"},
		{name: "wrong abi version", wasm: tinyModule(2, body(i64Const(0))), want: ReasonABIVersion, msg: "returned 2"},
		{name: "foreign import", wasm: buildWasm(true, []wasmImport{{module: "env", name: "open_socket"}}, []wasmFunc{
			{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(1))},
			{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(0))},
			{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: body(i64Const(0))},
		}), want: ReasonInvalidModule, msg: "env.open_socket"},
		{name: "abi version traps", wasm: buildWasm(true, nil, []wasmFunc{
			{name: "reverser_abi_version", results: []byte{i32}, body: body(instrUnreachable)},
			{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(0))},
			{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: body(i64Const(0))},
		}), want: ReasonTrap},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			digest := tc.digest
			if digest == "" && tc.want != ReasonDigestMismatch {
				digest = digestOf(tc.wasm)
			}
			m, err := h.Load(context.Background(), tc.wasm, digest)
			if m != nil {
				t.Cleanup(func() { m.Release(context.Background()) })
			}
			wantReason(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestHost_Load_sharesModulePerDigest(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	wasm := goPlugin(t, pkgStrip)
	ctx := context.Background()
	a, err := h.Load(ctx, wasm, "sha256:"+strings.ToUpper(digestOf(wasm)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	b, err := h.Load(ctx, wasm, digestOf(wasm))
	if err != nil {
		t.Fatalf("second Load: %v", err)
	}
	if a != b {
		t.Fatal("two loads of one digest returned different modules")
	}
	if !a.HasSanitize() || a.HasLayout() {
		t.Fatalf("HasSanitize=%v HasLayout=%v, want true/false", a.HasSanitize(), a.HasLayout())
	}
	a.Release(ctx)
	if _, err := b.Sanitize(ctx, []byte(`{"kind":"ConfigMap"}`), nil, CallContext{}); err != nil {
		t.Fatalf("Sanitize after one of two releases: %v", err)
	}
	b.Release(ctx)
	_, err = b.Sanitize(ctx, []byte(`{"kind":"ConfigMap"}`), nil, CallContext{})
	wantReason(t, err, ReasonClosed)

	c := load(t, h, wasm) // reloaded from the kept compiled module
	if c == b {
		t.Fatal("a released module was handed out again")
	}
	if _, err := c.Sanitize(ctx, []byte(`{"kind":"ConfigMap"}`), nil, CallContext{}); err != nil {
		t.Fatalf("Sanitize after reload: %v", err)
	}
}

func TestHost_Load_onDiskCache(t *testing.T) {
	dir := t.TempDir()
	wasm := goPlugin(t, pkgTeam)
	for i := range 2 { // the second host compiles from the cache
		h := newTestHost(t, Options{CacheDir: dir, CallTimeout: generous})
		m := load(t, h, wasm)
		path, err := m.Layout(context.Background(), []byte(`{"kind":"Namespace","metadata":{"name":"shop"}}`), nil, CallContext{})
		if err != nil || path != "teams/unowned/_cluster/namespace/shop.yaml" {
			t.Fatalf("host %d: Layout = %q, %v", i, path, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache dir is empty (%v)", err)
	}
}

func TestModule_Sanitize_stripSanitizer(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, goPlugin(t, pkgStrip))
	settings := []byte(`{"dropLabels":["pod-template-hash","tier"],"dropAnnotations":["kubectl.kubernetes.io/last-applied-configuration"],"redactEnvPatterns":["(?i)password|token"]}`)
	out, err := m.Sanitize(context.Background(), deployment(t), settings, testCallContext)
	if err != nil {
		t.Fatalf("Sanitize: %v", err)
	}
	var obj struct {
		Metadata struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers     []struct{ Env []map[string]any } `json:"containers"`
					InitContainers []struct{ Env []map[string]any } `json:"initContainers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &obj); err != nil {
		t.Fatalf("output is not the object: %v", err)
	}
	wantLabels := map[string]string{"app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop", "team": "payments"}
	if len(obj.Metadata.Labels) != len(wantLabels) {
		t.Fatalf("labels = %v, want %v", obj.Metadata.Labels, wantLabels)
	}
	for k, v := range wantLabels {
		if obj.Metadata.Labels[k] != v {
			t.Fatalf("labels = %v, want %v", obj.Metadata.Labels, wantLabels)
		}
	}
	if _, ok := obj.Metadata.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok || obj.Metadata.Annotations["owner"] == "" {
		t.Fatalf("annotations = %v", obj.Metadata.Annotations)
	}
	env := obj.Spec.Template.Spec.Containers[0].Env
	got := map[string]any{}
	for _, e := range env {
		got[e["name"].(string)] = e["value"]
	}
	want := map[string]any{"DB_PASSWORD": "REDACTED", "LOG_LEVEL": "info", "API_TOKEN": "REDACTED", "DB_HOST": nil}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("env %s = %v, want %v (env %v)", k, got[k], v, env)
		}
	}
	if v := obj.Spec.Template.Spec.InitContainers[0].Env[0]["value"]; v != "REDACTED" {
		t.Fatalf("init container env value = %v, want REDACTED", v)
	}
}

func TestModule_Layout_teamLayout(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, goPlugin(t, pkgTeam))
	cases := []struct {
		name     string
		object   string
		settings string
		want     string
	}{
		{name: "label", object: string(deployment(t)), settings: `{"label":"team","fallback":"unowned"}`, want: "teams/payments/shop/deployment/checkout.yaml"},
		{name: "fallback", object: `{"kind":"ConfigMap","metadata":{"name":"cfg","namespace":"web"}}`, settings: `{"label":"team","fallback":"nobody"}`, want: "teams/nobody/web/configmap/cfg.yaml"},
		{name: "default settings", object: `{"kind":"ClusterRole","metadata":{"name":"view","labels":{"team":"sre"}}}`, want: "teams/sre/_cluster/clusterrole/view.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Layout(context.Background(), []byte(tc.object), []byte(tc.settings), testCallContext)
			if err != nil || got != tc.want {
				t.Fatalf("Layout = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	_, err := m.Layout(context.Background(), []byte(`{"kind":"ConfigMap","metadata":{}}`), nil, testCallContext)
	wantReason(t, err, ReasonPluginFailed)
	if !strings.Contains(err.Error(), "metadata.name") {
		t.Fatalf("error %q does not say what is missing", err)
	}
	_, err = m.Sanitize(context.Background(), []byte(`{}`), nil, testCallContext)
	wantReason(t, err, ReasonMissingExport)
}

// TestModule_Sanitize_hostileContained runs each misbehaviour and checks the
// typed error, then that the same module and a good module still serve.
func TestModule_Sanitize_hostileContained(t *testing.T) {
	for _, mode := range []struct {
		name     string
		deadline deadlineMode
	}{{"interrupt", deadlineInterrupt}, {"context", deadlineContext}} {
		t.Run(mode.name, func(t *testing.T) {
			// The deadline comes from each call's context here: filling 64 MiB
			// (oom) takes seconds on a loaded machine, a loop must stop sooner.
			h := newTestHost(t, Options{CallTimeout: generous, MemoryLimitPages: 1024, PoolSize: 2, deadline: mode.deadline})
			hostile := load(t, h, goPlugin(t, pkgHostile))
			good := load(t, h, goPlugin(t, pkgStrip))
			obj := []byte(`{"kind":"ConfigMap","metadata":{"name":"x"}}`)
			cases := []struct {
				mode    string
				want    Reason
				msg     string
				timeout time.Duration
			}{
				{mode: "loop", want: ReasonTimeout, timeout: time.Second},
				{mode: "oom", want: ReasonOutOfMemory},
				{mode: "crash", want: ReasonTrap},
				{mode: "panic", want: ReasonPluginFailed, msg: "hostile panic"},
				{mode: "error", want: ReasonPluginFailed, msg: "refusing this object"},
				{mode: "notjson", want: ReasonBadOutput, msg: "not valid JSON"},
				{mode: "array", want: ReasonBadOutput, msg: "not a JSON object"},
			}
			for _, tc := range cases {
				t.Run(tc.mode, func(t *testing.T) {
					ctx := context.Background()
					if tc.timeout > 0 {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, tc.timeout)
						defer cancel()
					}
					_, err := hostile.Sanitize(ctx, obj, []byte(`{"mode":"`+tc.mode+`"}`), testCallContext)
					wantReason(t, err, tc.want)
					if !strings.Contains(err.Error(), tc.msg) {
						t.Fatalf("error %q does not contain %q", err, tc.msg)
					}
					checkServes(t, hostile, good, obj)
				})
			}
		})
	}
}

// checkServes asserts that both modules still answer correctly.
func checkServes(t *testing.T, hostile, good *Module, obj []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	out, err := hostile.Sanitize(ctx, obj, []byte(`{"mode":"ok"}`), testCallContext)
	if err != nil || string(out) != string(obj) {
		t.Fatalf("hostile module in ok mode: %q, %v", out, err)
	}
	if _, err := good.Sanitize(ctx, obj, nil, testCallContext); err != nil {
		t.Fatalf("good module after hostile call: %v", err)
	}
}

func TestModule_Sanitize_hugeOutputRejected(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous, MemoryLimitPages: 4096})
	m := load(t, h, goPlugin(t, pkgHostile))
	_, err := m.Sanitize(context.Background(), []byte(`{}`), []byte(`{"mode":"huge"}`), testCallContext)
	wantReason(t, err, ReasonOutputTooLarge)
	if !strings.Contains(err.Error(), "104857600 bytes") {
		t.Fatalf("error %q does not give the size", err)
	}
	out, err := m.Sanitize(context.Background(), []byte(`{}`), []byte(`{"mode":"ok"}`), testCallContext)
	if err != nil || string(out) != "{}" {
		t.Fatalf("after huge output: %q, %v", out, err)
	}
}

func TestModule_Layout_hostilePathsReturnedAsIs(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, goPlugin(t, pkgHostile))
	cases := []struct {
		mode string
		want string
		err  Reason
	}{
		{mode: "escape-path", want: "../../etc/passwd"},
		{mode: "git-path", want: ".git/config"},
		{mode: "ok", want: "hostile/ok.yaml"},
		{mode: "empty", err: ReasonPluginFailed},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			got, err := m.Layout(context.Background(), []byte(`{}`), []byte(`{"mode":"`+tc.mode+`"}`), testCallContext)
			if tc.err != "" {
				wantReason(t, err, tc.err)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Layout = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestModule_Sanitize_handEncodedHostile covers misbehaviour a Go plugin
// cannot produce: raw traps, lying pointers and lengths, and pure loops.
func TestModule_Sanitize_handEncodedHostile(t *testing.T) {
	cases := []struct {
		name string
		body []byte
		want Reason
		msg  string
	}{
		{name: "unreachable", body: body(instrUnreachable), want: ReasonTrap, msg: "unreachable"},
		{name: "pointer outside memory", body: body(i64Const(packed(1<<20, 10))), want: ReasonBadOutput, msg: "outside memory"},
		{name: "length beyond cap is checked before reading", body: body(i64Const(packed(0, 200<<20))), want: ReasonOutputTooLarge},
		{name: "error message outside memory", body: body(i64Const(packed(1<<20, 5|errorFlag))), want: ReasonBadOutput},
		{name: "zero bytes of output", body: body(i64Const(0)), want: ReasonBadOutput},
		{name: "loop forever", body: body(instrLoopForever, instrUnreachable), want: ReasonTimeout},
	}
	for _, mode := range []deadlineMode{deadlineInterrupt, deadlineContext} {
		h := newTestHost(t, Options{CallTimeout: 300 * time.Millisecond, deadline: mode})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				m := load(t, h, tinyModule(1, tc.body))
				_, err := m.Sanitize(context.Background(), []byte(`{"kind":"Pod"}`), nil, testCallContext)
				wantReason(t, err, tc.want)
				if !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %q does not contain %q", err, tc.msg)
				}
			})
		}
	}
}

func TestModule_Sanitize_callerCancels(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: time.Minute})
	m := load(t, h, tinyModule(1, body(instrLoopForever, instrUnreachable)))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Sanitize(ctx, []byte(`{}`), nil, CallContext{})
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		wantReason(t, err, ReasonTimeout)
	case <-time.After(generous):
		t.Fatal("a cancelled call did not return")
	}
}

func TestModule_Sanitize_rejectsBadInput(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous})
	m := load(t, h, goPlugin(t, pkgStrip))
	cases := []struct{ name, object, settings string }{
		{name: "object not JSON", object: `{"kind":`},
		{name: "object not JSON inside its braces", object: `{"kind":}`},
		{name: "object is array", object: `[]`},
		{name: "settings not JSON", object: `{}`, settings: `{"dropLabels":`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Sanitize(context.Background(), []byte(tc.object), []byte(tc.settings), CallContext{}); err == nil {
				t.Fatal("want an error")
			}
		})
	}
	_, err := m.Sanitize(context.Background(), []byte(`{}`), []byte(`{"redactEnvPatterns":["("]}`), CallContext{})
	wantReason(t, err, ReasonPluginFailed)
}

func TestModule_Sanitize_concurrentCallsShareBoundedPool(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: generous, PoolSize: 2})
	m := load(t, h, goPlugin(t, pkgStrip))
	obj := deployment(t)
	settings := []byte(`{"redactEnvPatterns":["TOKEN"]}`)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := m.Sanitize(context.Background(), obj, settings, testCallContext)
			if err == nil && !strings.Contains(string(out), `"name":"API_TOKEN","value":"REDACTED"`) {
				err = errors.New("API_TOKEN not redacted")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.slots); n > 2 {
		t.Fatalf("%d instances live, pool size is 2", n)
	}
}

func TestHost_Close_failsLaterCalls(t *testing.T) {
	h, err := NewHost(context.Background(), Options{CallTimeout: generous})
	if err != nil {
		t.Fatal(err)
	}
	wasm := tinyModule(1, body(i64Const(0)))
	m, err := h.Load(context.Background(), wasm, digestOf(wasm))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err = m.Sanitize(context.Background(), []byte(`{}`), nil, CallContext{})
	wantReason(t, err, ReasonClosed)
	_, err = h.Load(context.Background(), wasm, digestOf(wasm))
	wantReason(t, err, ReasonClosed)
}

// TestHost_Close_waitsForCallsInFlight: the manager stops (Close) while a
// call runs a guest that loops until its deadline. Close waits for it
// instead of closing the runtime under the running guest (the race
// detector caught that at a suite's teardown); the call ends with its own
// timeout, and later calls fail as closed.
func TestHost_Close_waitsForCallsInFlight(t *testing.T) {
	h, err := NewHost(context.Background(), Options{CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wasm := tinyModule(1, body(instrLoopForever, instrUnreachable))
	m, err := h.Load(context.Background(), wasm, digestOf(wasm))
	if err != nil {
		t.Fatal(err)
	}
	callErr := make(chan error, 1)
	go func() {
		_, err := m.Sanitize(context.Background(), []byte(`{}`), nil, CallContext{})
		callErr <- err
	}()
	// Wait until the call holds the host's running lock (it is in flight):
	// a fixed sleep raced a loaded CI machine, where Close came first.
	for h.running.TryLock() {
		h.running.Unlock()
		select {
		case err := <-callErr:
			t.Fatalf("the call ended before it was seen in flight: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := h.inFlight.Load(); n != 0 {
		t.Fatalf("Close returned while %d call(s) still ran guest code", n)
	}
	select {
	case err := <-callErr:
		// The guest ran to its own deadline: had Close torn the runtime
		// down under it, the call would end closed or trapped instead.
		var pe *PluginError
		if !errors.As(err, &pe) || pe.Reason != ReasonTimeout {
			t.Fatalf("the call in flight ended with %v, want its own timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call in flight never returned")
	}
	_, err = m.Sanitize(context.Background(), []byte(`{}`), nil, CallContext{})
	wantReason(t, err, ReasonClosed)
}
