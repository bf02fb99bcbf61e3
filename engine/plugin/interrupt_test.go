package plugin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// probeFor is the instruction sequence instrument inserts for global g.
func probeFor(g byte) []byte { return []byte{0x23, g, 0x04, 0x40, 0x00, 0x0b} }

func TestInstrument_probesEveryLoop(t *testing.T) {
	twoLoops := body(
		[]byte{0x03, 0x40, 0x03, 0x40, 0x0b, 0x0b}, // loop loop end end
		i64Const(0),
	)
	in := tinyModule(1, twoLoops)
	out, err := instrument(in)
	if err != nil {
		t.Fatal(err)
	}
	// No globals before: the flag is global 0, and both loops check it.
	if n := bytes.Count(out, probeFor(0)); n != 2 {
		t.Fatalf("found %d probes, want 2", n)
	}
	if !bytes.Contains(out, append(wasmName(interruptExport), 0x03, 0x00)) {
		t.Fatal("the flag is not exported as global 0")
	}
	compiles(t, out)
}

func TestInstrument_indexesAfterImportedAndDefinedGlobals(t *testing.T) {
	// (import "env" "g" (global i32)) (global (mut i32) (i32.const 7))
	// (func (export "f") loop end)
	mod := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	mod = append(mod, section(1, []byte{0x60, 0x00, 0x00})...)
	mod = append(mod, section(2, append(append(wasmName("env"), wasmName("g")...), 0x03, 0x7f, 0x00))...)
	mod = append(mod, section(3, []byte{0x00})...)
	mod = append(mod, section(6, []byte{0x7f, 0x01, 0x41, 0x07, 0x0b})...)
	mod = append(mod, section(7, append(wasmName("f"), 0x00, 0x00))...)
	mod = append(mod, section(10, []byte{0x05, 0x00, 0x03, 0x40, 0x0b, 0x0b})...)
	compiles(t, mod)
	out, err := instrument(mod)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, probeFor(2)) {
		t.Fatal("the probe does not read global 2 (after one imported and one defined global)")
	}
	compiles(t, out)
}

func TestInstrument_rejects(t *testing.T) {
	good := tinyModule(1, body(i64Const(0)))
	withExport := func(name string) []byte {
		return buildWasm(true, nil, []wasmFunc{{name: name, body: body()}})
	}
	cases := []struct {
		name, want string
		wasm       []byte
	}{
		{"empty", "no \\0asm magic", nil},
		{"text format", "no \\0asm magic", []byte("(module)")},
		{"version 2", "unsupported WebAssembly binary version", append([]byte("\x00asm\x02\x00\x00\x00"), good[8:]...)},
		{"truncated", "runs past the end", good[:len(good)-3]},
		{"unknown section", "unknown section id", append(bytes.Clone(good), 0x20, 0x00)},
		{"sections out of order", "out of order", append(bytes.Clone(good), section(1, []byte{0x60, 0x00, 0x00})...)},
		{"unknown instruction", "unsupported instruction", tinyModule(1, body([]byte{0xfb, 0x00}))},
		{"reserved export", "reserves", withExport(interruptExport)},
		{"body without end", "ends inside a block", buildWasm(true, nil, []wasmFunc{{name: "f", body: []byte{0x03, 0x40}}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := instrument(tc.wasm)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("instrument = %v, want an error containing %q", err, tc.want)
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
