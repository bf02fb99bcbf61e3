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
// per call (Go's WebAssembly backend also wraps every function body in a
// loop), so those exits cost 7x the work of the call itself (measured in
// docs/benchmarks.md).
//
// instrument gives the module a cheaper stop check instead: a new mutable
// i32 global, exported as interruptExport, that the first instructions of
// every loop body read, trapping when it is non-zero:
//
//	loop <blocktype>
//	  global.get $interrupt
//	  if
//	    unreachable
//	  end
//	  ...original body
//
// That is a load and a predicted branch per iteration, without leaving
// machine code. The host's watchdog sets the global when a call's deadline
// passes (see guard); the guest traps at its next loop header, on its own
// goroutine, so nothing is released under a running guest. Straight-line
// code ends by itself and unbounded recursion ends in a stack-overflow trap,
// so loops are the only place a guest can run forever.
//
// Inserted instructions leave branch depths, function indices and the
// stack unchanged: the if block is balanced and only nests its own trap.

// interruptExport is the export name of the stop flag in an instrumented
// module; a module may not export this name itself.
const interruptExport = "__reverser_interrupt"

// Section ids of the WebAssembly binary format.
const (
	secCustom    = 0
	secImport    = 2
	secGlobal    = 6
	secExport    = 7
	secCode      = 10
	secDataCount = 12
	secTag       = 13
)

// sectionRank orders known sections as the binary format requires (the tag
// section sits between memory and global).
func sectionRank(id byte) int {
	switch id {
	case secTag:
		return 55 // after memory (5), before global (6)
	case secDataCount:
		return 95 // after element (9), before code (10)
	default:
		return int(id) * 10
	}
}

type wasmSection struct {
	id         byte
	start, end int // content, without the id and size
}

// instrument returns a copy of wasm with a stop check at the head of every
// loop (see above). It decodes only what it needs: the section layout, the
// import, global and export counts and every instruction of every function
// body; it rejects a module it cannot fully decode, which wazero would
// reject too.
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly binary (no \\0asm magic)")
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("unsupported WebAssembly binary version % x", wasm[4:8])
	}
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

	var importedGlobals, definedGlobals uint32
	for _, s := range sections {
		var err error
		switch s.id {
		case secImport:
			importedGlobals, err = countImportedGlobals(wasm[s.start:s.end])
		case secGlobal:
			definedGlobals, err = (&wasmReader{b: wasm[s.start:s.end]}).u32()
		case secExport:
			err = checkExportNames(wasm[s.start:s.end])
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	global := importedGlobals + definedGlobals
	probe := append(append([]byte{0x23}, appendULEB(nil, uint64(global))...), 0x04, 0x40, 0x00, 0x0b)
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b} // (mut i32) (i32.const 0)
	newExport := appendULEB(append(appendName(nil, interruptExport), 0x03), uint64(global))
	// Loops are a few per cent of the code, so this rarely grows.
	out := make([]byte, 0, len(wasm)+len(wasm)/16+64)
	out = append(out, wasm[:8]...)
	haveGlobal, haveExport := false, false
	emit := func(id byte, content []byte) { out = appendSection(out, id, content) }
	prepend := appendVec
	for _, s := range sections {
		content := wasm[s.start:s.end]
		if s.id != secCustom {
			if !haveGlobal && sectionRank(s.id) > sectionRank(secGlobal) {
				emit(secGlobal, prepend(0, nil, newGlobal))
				haveGlobal = true
			}
			if !haveExport && sectionRank(s.id) > sectionRank(secExport) {
				emit(secExport, prepend(0, nil, newExport))
				haveExport = true
			}
		}
		switch s.id {
		case secCustom:
			if isDebugSection(content) {
				continue // DWARF offsets would no longer match the code
			}
			emit(s.id, content)
		case secGlobal:
			cr := &wasmReader{b: content}
			n, _ := cr.u32() // decoded above
			emit(s.id, prepend(n, content[cr.off:], newGlobal))
			haveGlobal = true
		case secExport:
			cr := &wasmReader{b: content}
			n, _ := cr.u32()
			emit(s.id, prepend(n, content[cr.off:], newExport))
			haveExport = true
		case secCode:
			code, err := instrumentCode(content, probe)
			if err != nil {
				return nil, fmt.Errorf("code section: %w", err)
			}
			emit(s.id, code)
		default:
			emit(s.id, content)
		}
	}
	if !haveGlobal {
		emit(secGlobal, prepend(0, nil, newGlobal))
	}
	if !haveExport {
		emit(secExport, prepend(0, nil, newExport))
	}
	return out, nil
}

func isDebugSection(content []byte) bool {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil || uint64(n) > uint64(len(content)-r.off) {
		return false
	}
	return strings.HasPrefix(string(content[r.off:r.off+int(n)]), ".debug_")
}

func countImportedGlobals(content []byte) (uint32, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	var globals uint32
	for range n {
		if err := r.skipName(); err != nil {
			return 0, err
		}
		if err := r.skipName(); err != nil {
			return 0, err
		}
		kind, err := r.byte()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 0x00: // function: type index
			_, err = r.u32()
		case 0x01: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = r.skipLimits()
			}
		case 0x02: // memory: limits
			err = r.skipLimits()
		case 0x03: // global: valtype, mutability
			globals++
			_, err = r.take(2)
		case 0x04: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return 0, fmt.Errorf("unknown import kind 0x%02x at offset %d", kind, r.off-1)
		}
		if err != nil {
			return 0, err
		}
	}
	return globals, nil
}

func checkExportNames(content []byte) error {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return err
	}
	for range n {
		name, err := r.name()
		if err != nil {
			return err
		}
		if name == interruptExport {
			return fmt.Errorf("the module exports %q, a name this host reserves", interruptExport)
		}
		if _, err := r.byte(); err != nil {
			return err
		}
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// instrumentCode rewrites the code section, inserting probe after the
// block type of every loop.
func instrumentCode(content, probe []byte) ([]byte, error) {
	r := &wasmReader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendULEB(make([]byte, 0, len(content)+len(content)/16), uint64(n))
	var body []byte
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		if uint64(size) > uint64(len(content)-r.off) {
			return nil, fmt.Errorf("function %d: body size %d runs past the section", i, size)
		}
		body, err = instrumentBody(body[:0], content[r.off:r.off+int(size)], probe)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
		r.off += int(size)
	}
	if r.off != len(content) {
		return nil, fmt.Errorf("%d bytes after the last function body", len(content)-r.off)
	}
	return out, nil
}

// instrumentBody appends fn (locals and expression) to out with probe after
// every loop's block type.
func instrumentBody(out, fn, probe []byte) ([]byte, error) {
	r := &wasmReader{b: fn}
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
	copied := 0
	depth := 1 // the function body's own block
	for depth > 0 {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, fmt.Errorf("body ends inside a block: %w", err)
		}
		switch {
		case op == 0x03: // loop blocktype
			if err := r.skipSLEB(5); err != nil {
				return nil, err
			}
			depth++
			out = append(out, fn[copied:r.off]...)
			out = append(out, probe...)
			copied = r.off
		case op == 0x02 || op == 0x04: // block, if
			if err := r.skipSLEB(5); err != nil {
				return nil, err
			}
			depth++
		case op == 0x0b: // end
			depth--
		default:
			if err := r.skipImmediates(op); err != nil {
				return nil, fmt.Errorf("instruction 0x%02x at body offset %d: %w", op, at, err)
			}
		}
	}
	if r.off != len(fn) {
		return nil, fmt.Errorf("%d bytes after the body's final end", len(fn)-r.off)
	}
	return append(out, fn[copied:]...), nil
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
