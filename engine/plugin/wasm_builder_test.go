package plugin

// A tiny WebAssembly binary encoder for hand-made hostile modules: there is
// no wat2wasm in the build, and these modules are a few dozen bytes each.

const (
	i32 = 0x7f
	i64 = 0x7e
)

// wasmFunc is one defined, exported function; body is the instruction
// sequence including the final end (0x0b), with no locals.
type wasmFunc struct {
	name            string
	params, results []byte
	body            []byte
}

// wasmImport is one imported function of type () -> ().
type wasmImport struct{ module, name string }

func uleb(v uint64) []byte { return appendULEB(nil, v) }

func sleb(v int64) []byte { return appendSLEB(nil, v) }

func wasmName(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func section(id byte, items ...[]byte) []byte {
	body := uleb(uint64(len(items)))
	for _, it := range items {
		body = append(body, it...)
	}
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

// buildWasm encodes a module with one 1-page memory (exported as "memory"
// when exportMemory), the given imports and functions.
func buildWasm(exportMemory bool, imports []wasmImport, funcs []wasmFunc) []byte {
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	var types, fnTypes, exports, codes [][]byte
	if len(imports) > 0 {
		types = append(types, []byte{0x60, 0x00, 0x00})
	}
	for _, f := range funcs {
		t := []byte{0x60}
		t = append(t, uleb(uint64(len(f.params)))...)
		t = append(t, f.params...)
		t = append(t, uleb(uint64(len(f.results)))...)
		t = append(t, f.results...)
		fnTypes = append(fnTypes, uleb(uint64(len(types))))
		types = append(types, t)
	}
	out = append(out, section(1, types...)...)
	if len(imports) > 0 {
		var ims [][]byte
		for _, im := range imports {
			ims = append(ims, append(append(wasmName(im.module), wasmName(im.name)...), 0x00, 0x00))
		}
		out = append(out, section(2, ims...)...)
	}
	out = append(out, section(3, fnTypes...)...)
	out = append(out, section(5, []byte{0x00, 0x01})...)
	if exportMemory {
		exports = append(exports, append(wasmName("memory"), 0x02, 0x00))
	}
	for i, f := range funcs {
		idx := uleb(uint64(len(imports) + i))
		exports = append(exports, append(append(wasmName(f.name), 0x00), idx...))
		code := append([]byte{0x00}, f.body...) // no locals
		codes = append(codes, append(uleb(uint64(len(code))), code...))
	}
	out = append(out, section(7, exports...)...)
	return append(out, section(10, codes...)...)
}

func i32Const(v int32) []byte { return append([]byte{0x41}, sleb(int64(v))...) }
func i64Const(v int64) []byte { return append([]byte{0x42}, sleb(v)...) }

func body(instrs ...[]byte) []byte {
	var b []byte
	for _, in := range instrs {
		b = append(b, in...)
	}
	return append(b, 0x0b)
}

var (
	instrUnreachable = []byte{0x00}
	// instrLoopForever is `loop br 0 end`.
	instrLoopForever = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}
)

// tinyModule is an ABI-shaped module whose sanitize runs sanitizeBody.
func tinyModule(version int32, sanitizeBody []byte) []byte {
	return buildWasm(true, nil, []wasmFunc{
		{name: "reverser_abi_version", results: []byte{i32}, body: body(i32Const(version))},
		{name: "alloc", params: []byte{i32}, results: []byte{i32}, body: body(i32Const(1024))},
		{name: "sanitize", params: []byte{i32, i32}, results: []byte{i64}, body: sanitizeBody},
	})
}

// packed returns the i64 result ptr<<32 | n.
func packed(ptr, n uint32) int64 { return int64(uint64(ptr)<<32 | uint64(n)) }
