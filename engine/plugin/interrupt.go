package plugin

import (
	"errors"
	"fmt"
	"strings"
)

// A guest loop has to be stoppable, and wazero's own way to stop one
// (RuntimeConfig.WithCloseOnContextDone) compiles, at every loop header, an
// indirect call that leaves machine code for the Go runtime to ask whether
// the module was closed. A Go-built plugin runs thousands of loop iterations
// per call (Go's WebAssembly backend also jumps back through a loop for
// every branch and call), so those exits cost 7x the work of the call itself
// (measured in docs/benchmarks.md).
//
// instrument gives the module a cheaper check instead: a countdown in a new
// mutable i32 global, decremented at the head of every loop body; when it
// reaches zero the guest calls the host's interrupt_check import, which
// answers on the guest's own goroutine whether the call is past its
// deadline or cancelled, and the guest traps if so:
//
//	loop <blocktype>
//	  global.get $countdown  i32.const 1  i32.sub  global.set $countdown
//	  global.get $countdown  i32.eqz
//	  if
//	    i32.const checkEvery  global.set $countdown
//	    call $interrupt_check
//	    if  unreachable  end
//	  end
//	  ...original body
//
// A few register operations per iteration and one call into Go every
// checkEvery iterations. That call matters twice: it is how the deadline is
// seen, and it is a point where the Go scheduler can preempt the goroutine.
// Compiled code cannot be preempted, so a design that waits for a timer to
// raise a flag stops nothing once every P runs a looping guest: the timers
// live on those Ps (a first version of this file did that, and the e2e
// suite hung with two looping instances on two cores).
//
// Straight-line code ends by itself, and recursion ends in wazero's
// stack-overflow trap, so loops are the only way to run forever. (Tail calls
// could recurse without a loop or a growing stack; wazero refuses them
// unless a runtime enables its experimental tail-call feature, and this
// host does not.)
//
// Adding an imported function gives it the index after the module's other
// imports, so every reference to a defined function moves up by one: calls,
// ref.func, exports, the start function, element segments, global
// initializers and the function names of the name section are rewritten.
// The inserted if block is balanced and nests only its own code, so branch
// depths are unchanged.

// The import instrumented modules call, provided by the host.
const (
	interruptModule = "gitops-reverser"
	interruptCheck  = "interrupt_check"
)

// checkEvery is how many loop iterations pass between two calls of
// interrupt_check: rare enough that BenchmarkDeadline shows no cost over
// running without checks, frequent enough that a stop comes within a few
// milliseconds (TestInterrupt_deadlineDuringGoLoop logs the delay).
const checkEvery = 4096

// Section ids of the WebAssembly binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secDataCount = 12
	secTag       = 13
)

// sectionRank orders known sections as the binary format requires (the tag
// section sits between memory and global, data count before code).
func sectionRank(id byte) int {
	switch id {
	case secTag:
		return 55
	case secDataCount:
		return 95
	default:
		return int(id) * 10
	}
}

type wasmSection struct {
	id         byte
	start, end int // content, without the id and size
}

// moduleCounts are the index spaces instrument extends.
type moduleCounts struct {
	types, importedFuncs, importedGlobals, definedGlobals uint32
}

// instrument returns a copy of wasm with the countdown and its check at the
// head of every loop (see above). It decodes every section it rewrites and
// every instruction of every function body, and rejects a module it cannot
// fully decode (wazero would reject it too, or it uses an instruction
// outside wazero's default features).
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly binary (no \\0asm magic)")
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("unsupported WebAssembly binary version % x", wasm[4:8])
	}
	sections, err := splitSections(wasm)
	if err != nil {
		return nil, err
	}
	var c moduleCounts
	for _, s := range sections {
		content := wasm[s.start:s.end]
		switch s.id {
		case secType:
			c.types, err = (&wasmReader{b: content}).u32()
		case secImport:
			err = countImports(content, &c)
		case secGlobal:
			c.definedGlobals, err = (&wasmReader{b: content}).u32()
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	rw := &rewriter{check: c.importedFuncs, countdown: c.importedGlobals + c.definedGlobals}
	rw.probe = rw.buildProbe()

	checkType := []byte{0x60, 0x00, 0x01, 0x7f} // () -> i32
	checkImport := appendName(appendName(nil, interruptModule), interruptCheck)
	checkImport = appendULEB(append(checkImport, 0x00), uint64(c.types))
	countdown := append([]byte{0x7f, 0x01, 0x41}, appendSLEB(nil, checkEvery)...) // (mut i32) (i32.const checkEvery)
	countdown = append(countdown, 0x0b)

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, wasm[:8]...)
	added := map[byte]bool{}
	// ensure emits a section of one new item where the module has none.
	ensure := func(id byte, item []byte, before int) {
		if !added[id] && sectionRank(id) < before {
			out = appendSection(out, id, appendVec(0, nil, item))
			added[id] = true
		}
	}
	for _, s := range sections {
		content := wasm[s.start:s.end]
		if s.id != secCustom {
			rank := sectionRank(s.id)
			ensure(secType, checkType, rank)
			ensure(secImport, checkImport, rank)
			ensure(secGlobal, countdown, rank)
		}
		var (
			next []byte
			err  error
		)
		switch s.id {
		case secCustom:
			if next = rw.customSection(content); next == nil {
				continue // dropped
			}
		case secType:
			next, err = appendToVec(content, checkType)
			added[secType] = true
		case secImport:
			next, err = appendToVec(content, checkImport)
			added[secImport] = true
		case secGlobal:
			next, err = rw.globals(content, countdown)
			added[secGlobal] = true
		case secExport:
			next, err = rw.exports(content)
		case secStart:
			next, err = rw.start(content)
		case secElement:
			next, err = rw.elements(content)
		case secCode:
			next, err = rw.code(content)
		default:
			next = content
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		out = appendSection(out, s.id, next)
	}
	ensure(secType, checkType, 1<<30)
	ensure(secImport, checkImport, 1<<30)
	ensure(secGlobal, countdown, 1<<30)
	return out, nil
}

// splitSections returns the sections of wasm in order, checking ids, sizes
// and order.
func splitSections(wasm []byte) ([]wasmSection, error) {
	r := &wasmReader{b: wasm, off: 8}
	var sections []wasmSection
	lastRank := 0
	for r.off < len(wasm) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section %d size: %w", id, err)
		}
		if uint64(size) > uint64(len(wasm)-r.off) {
			return nil, fmt.Errorf("section %d at offset %d: size %d runs past the end", id, r.off, size)
		}
		if id != secCustom {
			if id > secTag {
				return nil, fmt.Errorf("unknown section id %d at offset %d", id, r.off)
			}
			rank := sectionRank(id)
			if rank <= lastRank {
				return nil, fmt.Errorf("section %d at offset %d is out of order or repeated", id, r.off)
			}
			lastRank = rank
		}
		sections = append(sections, wasmSection{id: id, start: r.off, end: r.off + int(size)})
		r.off += int(size)
	}
	return sections, nil
}

func countImports(content []byte, c *moduleCounts) error {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return err
	}
	for range n {
		module, err := r.name()
		if err != nil {
			return err
		}
		if module == interruptModule {
			return fmt.Errorf("the module imports from %q, a module name this host reserves", interruptModule)
		}
		if err := r.skipName(); err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0x00: // function: type index
			c.importedFuncs++
			_, err = r.u32()
		case 0x01: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = r.skipLimits()
			}
		case 0x02: // memory: limits
			err = r.skipLimits()
		case 0x03: // global: valtype, mutability
			c.importedGlobals++
			_, err = r.take(2)
		case 0x04: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return fmt.Errorf("unknown import kind 0x%02x at offset %d", kind, r.off-1)
		}
		if err != nil {
			return err
		}
	}
	if r.off != len(content) {
		return fmt.Errorf("%d bytes after the last import", len(content)-r.off)
	}
	return nil
}

// appendToVec returns the vector section content with item appended.
func appendToVec(content, item []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return appendVec(n, content[r.off:], item), nil
}

// rewriter rewrites function references and instruments loops.
type rewriter struct {
	check     uint32 // index of the interrupt_check import; defined functions at or above it move up one
	countdown uint32 // index of the countdown global
	probe     []byte
}

func (rw *rewriter) shift(f uint32) uint32 {
	if f >= rw.check {
		return f + 1
	}
	return f
}

func (rw *rewriter) buildProbe() []byte {
	g := appendULEB(nil, uint64(rw.countdown))
	p := append([]byte{0x23}, g...)               // global.get $countdown
	p = append(p, 0x41, 0x01, 0x6b, 0x24)         // i32.const 1, i32.sub, global.set
	p = append(append(p, g...), 0x23)             // $countdown, global.get
	p = append(append(p, g...), 0x45, 0x04, 0x40) // $countdown, i32.eqz, if
	p = appendSLEB(append(p, 0x41), checkEvery)   // i32.const checkEvery
	p = append(append(p, 0x24), g...)             // global.set $countdown
	p = appendULEB(append(p, 0x10), uint64(rw.check))
	return append(p, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if unreachable end, end
}

// expr copies one expression from r to out, up to and including its final
// end, shifting function indices and, when probes is set, instrumenting
// loops.
func (rw *rewriter) expr(r *wasmReader, out []byte, probes bool) ([]byte, error) {
	copied := r.off
	for depth := 1; depth > 0; {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, errors.New("expression ends inside a block")
		}
		switch op {
		case 0x03: // loop blocktype
			if err := r.skipSLEB(5); err != nil {
				return nil, err
			}
			depth++
			if probes {
				out = append(append(out, r.b[copied:r.off]...), rw.probe...)
				copied = r.off
			}
		case 0x02, 0x04: // block, if
			if err := r.skipSLEB(5); err != nil {
				return nil, err
			}
			depth++
		case 0x0b: // end
			depth--
		case 0x10, 0x12, 0xd2: // call, return_call, ref.func
			f, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = appendULEB(append(out, r.b[copied:at+1]...), uint64(rw.shift(f)))
			copied = r.off
		default:
			if err := r.skipImmediates(op); err != nil {
				return nil, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, at, err)
			}
		}
	}
	return append(out, r.b[copied:r.off]...), nil
}

// funcIndices copies a vector of function indices, shifted.
func (rw *rewriter) funcIndices(r *wasmReader, out []byte) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out = appendULEB(out, uint64(n))
	for range n {
		f, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = appendULEB(out, uint64(rw.shift(f)))
	}
	return out, nil
}

// copyU32 copies one LEB128 u32.
func copyU32(r *wasmReader, out []byte) ([]byte, error) {
	v, err := r.u32()
	return appendULEB(out, uint64(v)), err
}

func copyByte(r *wasmReader, out []byte) ([]byte, error) {
	c, err := r.byte()
	return append(out, c), err
}

func (rw *rewriter) globals(content, extra []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(content)+len(extra)+5), uint64(n)+1)
	for range n {
		t, err := r.take(2) // valtype, mutability
		if err != nil {
			return nil, err
		}
		if out, err = rw.expr(r, append(out, t...), false); err != nil {
			return nil, err
		}
	}
	if r.off != len(content) {
		return nil, fmt.Errorf("%d bytes after the last global", len(content)-r.off)
	}
	return append(out, extra...), nil
}

func (rw *rewriter) exports(content []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(content)+8), uint64(n))
	for range n {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if kind == 0x00 {
			idx = rw.shift(idx)
		}
		out = appendULEB(append(appendName(out, name), kind), uint64(idx))
	}
	if r.off != len(content) {
		return nil, fmt.Errorf("%d bytes after the last export", len(content)-r.off)
	}
	return out, nil
}

func (rw *rewriter) start(content []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	f, err := r.u32()
	if err != nil {
		return nil, err
	}
	if r.off != len(content) {
		return nil, errors.New("trailing bytes after the start function")
	}
	return appendULEB(nil, uint64(rw.shift(f))), nil
}

// elements rewrites element segments (all eight encodings of WebAssembly
// 2.0): function indices and ref.func in element expressions move.
func (rw *rewriter) elements(content []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(content)+len(content)/8), uint64(n))
	for range n {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("unknown element segment flags %d", flags)
		}
		out = appendULEB(out, uint64(flags))
		if flags == 2 || flags == 6 { // explicit table index
			if out, err = copyU32(r, out); err != nil {
				return nil, err
			}
		}
		if flags&0x01 == 0 { // active: offset expression
			if out, err = rw.expr(r, out, false); err != nil {
				return nil, err
			}
		}
		if flags&0x03 != 0 { // elemkind (0-3) or reftype (4-7)
			if out, err = copyByte(r, out); err != nil {
				return nil, err
			}
		}
		if flags&0x04 == 0 {
			out, err = rw.funcIndices(r, out)
		} else {
			var exprs uint32
			if exprs, err = r.u32(); err == nil {
				out = appendULEB(out, uint64(exprs))
				for i := uint32(0); i < exprs && err == nil; i++ {
					out, err = rw.expr(r, out, false)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if r.off != len(content) {
		return nil, fmt.Errorf("%d bytes after the last element segment", len(content)-r.off)
	}
	return out, nil
}

// code rewrites every function body.
func (rw *rewriter) code(content []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(content)+len(content)/8), uint64(n))
	var body []byte
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		if uint64(size) > uint64(len(content)-r.off) {
			return nil, fmt.Errorf("function %d: body size %d runs past the section", i, size)
		}
		fr := &wasmReader{b: content[r.off : r.off+int(size)]}
		if body, err = rw.body(fr, body[:0]); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = append(appendULEB(out, uint64(len(body))), body...)
		r.off += int(size)
	}
	if r.off != len(content) {
		return nil, fmt.Errorf("%d bytes after the last function body", len(content)-r.off)
	}
	return out, nil
}

// body copies one function body (locals, then its expression).
func (rw *rewriter) body(r *wasmReader, out []byte) ([]byte, error) {
	groups, err := r.u32()
	if err != nil {
		return nil, err
	}
	for range groups {
		if _, err := r.u32(); err != nil {
			return nil, err
		}
		if _, err := r.byte(); err != nil {
			return nil, err
		}
	}
	out = append(out, r.b[:r.off]...)
	if out, err = rw.expr(r, out, true); err != nil {
		return nil, err
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("%d bytes after the body's final end", len(r.b)-r.off)
	}
	return out, nil
}

// customSection returns the custom section's new content, or nil to drop
// it: DWARF offsets no longer match the code, and the name section's
// function indices move with the new import.
func (rw *rewriter) customSection(content []byte) []byte {
	r := &wasmReader{b: content}
	name, err := r.name()
	switch {
	case err != nil:
		return content // wazero decides
	case strings.HasPrefix(name, ".debug_"):
		return nil
	case name == "name":
		out, err := rw.names(r, append([]byte(nil), content[:r.off]...))
		if err != nil {
			return nil // a broken name section only costs names in traces
		}
		return out
	default:
		return content
	}
}

// names rewrites the name section's subsections: function names (1) and
// local names (2) move with the functions, label names (3, indexed by
// function too) are dropped, the rest is kept.
func (rw *rewriter) names(r *wasmReader, out []byte) ([]byte, error) {
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		raw, err := r.take(int(size))
		if err != nil {
			return nil, err
		}
		var sub []byte
		sr := &wasmReader{b: raw}
		switch id {
		case 1: // function names: vec(funcidx name)
			sub, err = rw.nameMap(sr, nil, true)
		case 2: // local names: vec(funcidx vec(localidx name))
			var n uint32
			if n, err = sr.u32(); err == nil {
				sub = appendULEB(nil, uint64(n))
				for i := uint32(0); i < n && err == nil; i++ {
					var f uint32
					if f, err = sr.u32(); err == nil {
						sub = appendULEB(sub, uint64(rw.shift(f)))
						sub, err = rw.nameMap(sr, sub, false)
					}
				}
			}
		case 3:
			continue
		default:
			sub = raw
		}
		if err != nil {
			return nil, err
		}
		out = appendSection(out, id, sub)
	}
	return out, nil
}

// nameMap copies vec(idx name), shifting idx when funcs.
func (rw *rewriter) nameMap(r *wasmReader, out []byte, funcs bool) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out = appendULEB(out, uint64(n))
	for range n {
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if funcs {
			idx = rw.shift(idx)
		}
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		out = appendName(appendULEB(out, uint64(idx)), name)
	}
	return out, nil
}

// errUnsupported marks an instruction this decoder does not know; wazero's
// default features do not accept it either.
var errUnsupported = errors.New("unsupported instruction")

// skipImmediates skips the immediates of op (not block, loop, if or end).
func (r *wasmReader) skipImmediates(op byte) error {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b ||
		op == 0xd1 || (op >= 0x45 && op <= 0xc4):
		return nil // no immediates
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0xd2 ||
		(op >= 0x20 && op <= 0x26):
		_, err := r.u32() // label, function, local, global or table index
		return err
	case op == 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		for range n + 1 {
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect: type, table
		if _, err := r.u32(); err != nil {
			return err
		}
		_, err := r.u32()
		return err
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return err
		}
		_, err = r.take(int(n))
		return err
	case op >= 0x28 && op <= 0x3e: // loads and stores
		return r.skipMemArg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		_, err := r.u32()
		return err
	case op == 0x41:
		return r.skipSLEB(5)
	case op == 0x42:
		return r.skipSLEB(10)
	case op == 0x43:
		_, err := r.take(4)
		return err
	case op == 0x44:
		_, err := r.take(8)
		return err
	case op == 0xd0: // ref.null reftype
		_, err := r.byte()
		return err
	case op == 0xfc:
		return r.skipMiscImmediates()
	case op == 0xfd:
		return r.skipSIMDImmediates()
	case op == 0xfe:
		return r.skipAtomicImmediates()
	default:
		return errUnsupported
	}
}

// skipMiscImmediates handles the 0xfc prefix: saturating truncation, bulk
// memory and table instructions.
func (r *wasmReader) skipMiscImmediates() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	var indices int
	switch {
	case sub <= 7: // trunc_sat
		indices = 0
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, memory.fill, elem.drop, table.grow/size/fill
		indices = 1
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		indices = 2
	default:
		return fmt.Errorf("%w 0xfc %d", errUnsupported, sub)
	}
	for range indices {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// skipSIMDImmediates handles the 0xfd prefix (fixed-width SIMD, including
// relaxed SIMD, whose instructions take no immediates).
func (r *wasmReader) skipSIMDImmediates() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // v128 loads and stores
		return r.skipMemArg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		_, err := r.take(16)
		return err
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		_, err := r.byte()
		return err
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		if err := r.skipMemArg(); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0x113:
		return nil
	default:
		return fmt.Errorf("%w 0xfd %d", errUnsupported, sub)
	}
}

// skipAtomicImmediates handles the 0xfe prefix (threads).
func (r *wasmReader) skipAtomicImmediates() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub == 3: // atomic.fence
		_, err := r.byte()
		return err
	case sub <= 2 || (sub >= 0x10 && sub <= 0x4e):
		return r.skipMemArg()
	default:
		return fmt.Errorf("%w 0xfe %d", errUnsupported, sub)
	}
}

// wasmReader decodes the WebAssembly binary format.
type wasmReader struct {
	b   []byte
	off int
}

var errTruncated = errors.New("unexpected end of module")

func (r *wasmReader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *wasmReader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, errTruncated
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out, nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *wasmReader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 28 && c&0x70 != 0 {
			return 0, fmt.Errorf("LEB128 at offset %d overflows 32 bits", r.off-1)
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("LEB128 at offset %d is too long", r.off)
}

// skipSLEB skips a signed LEB128 of at most maxBytes bytes.
func (r *wasmReader) skipSLEB(maxBytes int) error {
	for range maxBytes {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return fmt.Errorf("LEB128 at offset %d is too long", r.off)
}

func (r *wasmReader) skipMemArg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 { // multi-memory: a memory index follows
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return r.skipSLEB(10) // offset: u32, or u64 with memory64
}

func (r *wasmReader) skipLimits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if flags > 0x07 {
		return fmt.Errorf("unknown limits flags 0x%02x", flags)
	}
	if err := r.skipSLEB(10); err != nil {
		return err
	}
	if flags&0x01 != 0 {
		return r.skipSLEB(10)
	}
	return nil
}

func (r *wasmReader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.take(int(n))
	return string(b), err
}

func (r *wasmReader) skipName() error {
	_, err := r.name()
	return err
}

func appendULEB(out []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func appendSLEB(out []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func appendName(out []byte, s string) []byte {
	return append(appendULEB(out, uint64(len(s))), s...)
}

// appendVec encodes a vector of count+1 items: rest holds the count
// existing items, extra the new one.
func appendVec(count uint32, rest, extra []byte) []byte {
	out := appendULEB(make([]byte, 0, len(rest)+len(extra)+5), uint64(count)+1)
	return append(append(out, rest...), extra...)
}

func appendSection(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = appendULEB(out, uint64(len(content)))
	return append(out, content...)
}
