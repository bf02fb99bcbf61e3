package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// probeFor is the sequence instrument inserts when the check import has
// index check and the countdown global index countdown.
func probeFor(check, countdown uint32) []byte {
	return (&rewriter{check: check, countdown: countdown}).buildProbe()
}

func TestInstrument_probesEveryLoop(t *testing.T) {
	twoLoops := body(
		[]byte{0x03, 0x40, 0x03, 0x40, 0x0b, 0x0b}, // loop loop end end
		i64Const(0),
	)
	out, err := instrument(tinyModule(1, twoLoops))
	if err != nil {
		t.Fatal(err)
	}
	// No imports and no globals before: the check is function 0 and the
	// countdown global 0.
	if n := bytes.Count(out, probeFor(0, 0)); n != 2 {
		t.Fatalf("found %d probes, want 2", n)
	}
	compiles(t, out)
}

// indexModule imports a function and a global, defines a global and two
// functions, a funcref table filled by an element segment, and exports
// "run": f0 returns 7; run returns f0() + table[0]() (also f0) = 14.
func indexModule() []byte {
	mod := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	mod = append(mod, section(1, []byte{0x60, 0x00, 0x01, 0x7f}, []byte{0x60, 0x00, 0x00})...)
	mod = append(mod, section(2,
		append(append(wasmName("env"), wasmName("h")...), 0x00, 0x01),
		append(append(wasmName("env"), wasmName("g")...), 0x03, 0x7f, 0x00))...)
	mod = append(mod, section(3, []byte{0x00}, []byte{0x00})...)           // f1, run: type 0
	mod = append(mod, section(4, []byte{0x70, 0x00, 0x01})...)             // funcref table, min 1
	mod = append(mod, section(6, []byte{0x7f, 0x01, 0x41, 0x07, 0x0b})...) // (mut i32) 7
	mod = append(mod, section(7, append(wasmName("run"), 0x00, 0x02))...)
	mod = append(mod, section(9, []byte{0x00, 0x41, 0x00, 0x0b, 0x01, 0x01})...) // table[0] = func 1
	f1 := []byte{0x00, 0x03, 0x40, 0x0b, 0x41, 0x07, 0x0b}                       // loop end, i32.const 7
	run := []byte{0x00, 0x10, 0x01, 0x41, 0x00, 0x11, 0x00, 0x00, 0x6a, 0x0b}    // call 1, call_indirect t0 [0], add
	mod = append(mod, section(10, append(uleb(uint64(len(f1))), f1...), append(uleb(uint64(len(run))), run...))...)
	return mod
}

func TestInstrument_shiftsFunctionIndices(t *testing.T) {
	mod := indexModule()
	compiles(t, mod)
	out, err := instrument(mod)
	if err != nil {
		t.Fatal(err)
	}
	// One imported function before: the check is function 1; one imported
	// and one defined global before: the countdown is global 2.
	if !bytes.Contains(out, probeFor(1, 2)) {
		t.Fatal("the loop does not count down global 2 and call function 1")
	}
	// The imports come from a module named env: function h, global g.
	env := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	env = append(env, section(1, []byte{0x60, 0x00, 0x00})...)
	env = append(env, section(3, []byte{0x00})...)
	env = append(env, section(6, []byte{0x7f, 0x00, 0x41, 0x00, 0x0b})...)
	env = append(env, section(7, append(wasmName("h"), 0x00, 0x00), append(wasmName("g"), 0x03, 0x00))...)
	env = append(env, section(10, []byte{0x02, 0x00, 0x0b})...)
	ctx := context.Background()
	for name, wasm := range map[string][]byte{"original": mod, "instrumented": out} {
		t.Run(name, func(t *testing.T) {
			rt := wazero.NewRuntime(ctx)
			defer func() { _ = rt.Close(ctx) }()
			if _, err := rt.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
				t.Fatal(err)
			}
			_, err := rt.NewHostModuleBuilder(interruptModule).NewFunctionBuilder().
				WithGoFunction(api.GoFunc(interruptCheckFunc), nil, []api.ValueType{api.ValueTypeI32}).
				Export(interruptCheck).Instantiate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("m"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := m.ExportedFunction("run").Call(ctx)
			if err != nil || len(res) != 1 || res[0] != 14 {
				t.Fatalf("run() = %v, %v; want 14", res, err)
			}
		})
	}
}

// TestInstrument_goPluginsBehaveTheSame runs the strip plugin with and
// without instrumentation (wazero's checks instead): the output must not
// change.
func TestInstrument_goPluginsBehaveTheSame(t *testing.T) {
	obj := deployment(t)
	var outs [2][]byte
	for i, mode := range []deadlineMode{deadlineInterrupt, deadlineContext} {
		h := newTestHost(t, Options{CallTimeout: generous, deadline: mode})
		m := load(t, h, goPlugin(t, pkgStrip))
		out, err := m.Sanitize(context.Background(), obj, stripSettings, testCallContext)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = out
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatalf("instrumented output differs:\n%s\n%s", outs[0], outs[1])
	}
}

// TestInterrupt_everyPLooping runs more looping guests at once than there
// are Ps: compiled code cannot be preempted, so a stop that waited for a
// timer goroutine would never come (the first version of the interrupt
// hung the e2e suite this way). Each must stop at its own deadline.
func TestInterrupt_everyPLooping(t *testing.T) {
	n := runtime.GOMAXPROCS(0) + 2
	h := newTestHost(t, Options{CallTimeout: 300 * time.Millisecond, PoolSize: n})
	m := load(t, h, tinyModule(1, body(instrLoopForever, instrUnreachable)))
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := m.Sanitize(context.Background(), []byte(`{}`), nil, CallContext{})
			errs <- err
		}()
	}
	for range n {
		select {
		case err := <-errs:
			wantReason(t, err, ReasonTimeout)
		case <-time.After(generous):
			t.Fatalf("%d looping guests on %d Ps: a call did not return", n, runtime.GOMAXPROCS(0))
		}
	}
}

// TestInterrupt_startFunctionLoops: a module whose WebAssembly start
// function loops forever is stopped at the init timeout, not left running.
func TestInterrupt_startFunctionLoops(t *testing.T) {
	mod := buildWasm(true, nil, []wasmFunc{
		{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(1))},
		{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(1024))},
		{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: body(i64Const(0))},
		{name: "spin", body: body(instrLoopForever)},
	})
	sections, err := splitSections(mod)
	if err != nil {
		t.Fatal(err)
	}
	code := sections[len(sections)-1].start - 2 // the code section's id and one-byte size
	mod = append(append(append([]byte{}, mod[:code]...), 0x08, 0x01, 0x03), mod[code:]...)
	for _, mode := range []deadlineMode{deadlineInterrupt, deadlineContext} {
		h := newTestHost(t, Options{InitTimeout: 300 * time.Millisecond, deadline: mode})
		_, err := h.Load(context.Background(), mod, digestOf(mod))
		wantReason(t, err, ReasonTimeout)
	}
}

// TestInterrupt_deadlineDuringGoLoop stops a Go guest spinning in a loop
// without calls, the case wazero cannot stop without its own checks.
func TestInterrupt_deadlineDuringGoLoop(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: 200 * time.Millisecond})
	m := load(t, h, goPlugin(t, pkgHostile))
	start := time.Now()
	_, err := m.Sanitize(context.Background(), []byte(`{}`), []byte(`{"mode":"loop"}`), CallContext{})
	wantReason(t, err, ReasonTimeout)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not say the deadline passed", err)
	}
	t.Logf("stopped after %v", time.Since(start))
	// The pool replaces the stopped instance.
	if _, err := m.Sanitize(context.Background(), []byte(`{}`), nil, CallContext{}); err != nil {
		t.Fatalf("the module does not serve after a stopped call: %v", err)
	}
}

func compiles(t *testing.T, wasm []byte) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer func() { _ = rt.Close(ctx) }()
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		t.Fatalf("wazero rejects the module: %v", err)
	}
}

// FuzzInstrument: instrument never panics; whatever wazero accepts before
// instrumentation it accepts after; and it refuses only what wazero refuses
// too, or an instruction outside wazero's default features.
func FuzzInstrument(f *testing.F) {
	f.Add(tinyModule(1, body(instrLoopForever, instrUnreachable)))
	f.Add(tinyModule(1, body([]byte{0x02, 0x40, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x1a, 0x0b}, i64Const(3))))
	f.Add(buildWasm(false, []wasmImport{{"wasi_snapshot_preview1", "sched_yield"}}, []wasmFunc{{name: "f", body: body()}}))
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer func() { _ = rt.Close(ctx) }()
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrument(wasm)
		if !boundedVectors(wasm) {
			// wazero's decoder allocates a vector's declared length up
			// front: a few bytes can ask it for gigabytes.
			return
		}
		cm, cerr := rt.CompileModule(ctx, wasm)
		if cerr != nil {
			return
		}
		_ = cm.Close(ctx)
		if err != nil {
			if strings.Contains(err.Error(), "reserves") {
				return
			}
			t.Fatalf("wazero accepts the module, instrument does not: %v", err)
		}
		cm, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("wazero rejects the instrumented module: %v", err)
		}
		_ = cm.Close(ctx)
	})
}

// boundedVectors reports whether every section parses as id and size within
// the module and starts with a count no larger than its size in bytes.
func boundedVectors(wasm []byte) bool {
	if len(wasm) < 8 {
		return true
	}
	r := &wasmReader{b: wasm, off: 8}
	for r.off < len(wasm) {
		id, err := r.byte()
		if err != nil {
			return false
		}
		size, err := r.u32()
		if err != nil || uint64(size) > uint64(len(wasm)-r.off) {
			return false
		}
		if id != secCustom && id != 8 && id != secDataCount { // start and data count hold no vector
			cr := &wasmReader{b: wasm[r.off : r.off+int(size)]}
			if n, err := cr.u32(); err != nil || n > size {
				return false
			}
		}
		r.off += int(size)
	}
	return true
}

// TestInstrument_specTestModules instruments the WebAssembly 2.0 spec test
// modules that ship with wazero: every one wazero compiles must instrument
// and compile again. They cover every instruction and section encoding of
// the feature set the host enables.
func TestInstrument_specTestModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		t.Fatalf("locating wazero's module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test", "spectest", "v2", "testdata")
	files, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil || len(files) < 1000 {
		t.Fatalf("found %d spec test modules in %s (%v)", len(files), dir, err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer func() { _ = rt.Close(ctx) }()
	accepted, ran := 0, 0
	for _, f := range files {
		wasm, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			continue // a spec test of a module that must be refused
		}
		_ = cm.Close(ctx)
		accepted++
		inst, err := instrument(wasm)
		if err != nil {
			t.Errorf("%s: wazero accepts it, instrument does not: %v", filepath.Base(f), err)
			continue
		}
		cm, err = rt.CompileModule(ctx, inst)
		if err != nil {
			t.Errorf("%s: wazero refuses the instrumented module: %v", filepath.Base(f), err)
			continue
		}
		imports := len(cm.ImportedFunctions()) + len(cm.ImportedMemories())
		_ = cm.Close(ctx)
		// Only interrupt_check imported: the module runs on its own. Under
		// the race detector every third such module runs, to keep
		// make test within its time.
		if imports == 1 && (!raceEnabled || accepted%3 == 0) {
			if a, b := runExports(t, wasm, false), runExports(t, inst, true); a != b {
				before, after := strings.Split(a, "\n"), strings.Split(b, "\n")
				for i := range min(len(before), len(after)) {
					if strings.HasSuffix(before[i], stillRunning) || strings.HasSuffix(after[i], stillRunning) {
						break // a deep recursion may outlast the bound on one side: no verdict
					}
					if before[i] != after[i] {
						t.Errorf("%s: exports behave differently after instrumentation: %q, before: %q", filepath.Base(f), after[i], before[i])
						break
					}
				}
			}
			ran++
		}
	}
	t.Logf("%d of %d spec test modules compile, all instrument and compile again; %d without imports ran the same", accepted, len(files), ran)
}

// stillRunning marks a call runExports stopped.
const stillRunning = "still running after 1s"

// firstLine is an error's first line without function indices, which
// instrumentation moves ("start function[1] failed").
func firstLine(err error) string {
	return funcIndex.ReplaceAllString(strings.SplitN(err.Error(), "\n", 2)[0], "function[]")
}

var funcIndex = regexp.MustCompile(`function\[\d+\]`)

// runExports instantiates wasm and calls each exported function, in name
// order, with zero arguments, returning one line per call: the results'
// bits, or the first line of the error. Calls are bounded (wazero's context
// checks for the original, the interrupt for the instrumented module).
func runExports(t *testing.T, wasm []byte, instrumented bool) string {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(!instrumented))
	defer func() { _ = rt.Close(ctx) }()
	_, err := rt.NewHostModuleBuilder(interruptModule).NewFunctionBuilder().
		WithGoFunction(api.GoFunc(interruptCheckFunc), nil, []api.ValueType{api.ValueTypeI32}).
		Export(interruptCheck).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("m").WithStartFunctions())
	if err != nil {
		return "instantiate: " + firstLine(err)
	}
	var names []string
	for name := range mod.ExportedFunctionDefinitions() {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fn := mod.ExportedFunction(name)
		mode := deadlineContext
		if instrumented {
			mode = deadlineInterrupt
		}
		g := newGuard(ctx, time.Second, mode)
		res, err := fn.Call(g.ctx, make([]uint64, len(fn.Definition().ParamTypes()))...)
		g.stop()
		switch {
		case g.expired:
			b.WriteString(name + ": " + stillRunning + "\n")
			return b.String() // the instance is closed or stopped
		case err != nil:
			fmt.Fprintf(&b, "%s: %s\n", name, firstLine(err))
		default:
			fmt.Fprintf(&b, "%s: %v\n", name, res)
		}
	}
	return b.String()
}
