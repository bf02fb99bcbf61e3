package sdk

import (
	"errors"
	"math/bits"
	"unsafe"
)

// A structural index of the call's input, built in one pass when the call
// starts. Without it every Members, Elements and Lookup scans the bytes of
// the values it skips, so a sanitizer that visits metadata, then the pod
// template, then each container walks most of the object several times; in
// WebAssembly each pass over a 4 KB object costs tens of microseconds. With
// it they step from value to value.
//
// The index covers one document; Members and friends use it for any span of
// a slice of that document's memory (the object and the settings are
// sub-slices of the call input) and scan as before for any other document.

// node is one JSON value in document order (pre-order): an object's members
// appear as key node, value node, key node, ...
type node struct {
	start, end int32 // the value's bytes; strings include their quotes
	next       int32 // index of the node after this value and its children
}

// docIndex is the index of one document.
type docIndex struct {
	base  *byte
	size  int
	nodes []node
}

// current is the index of the input of the call being served; a WASM module
// serves one call at a time.
var current docIndex

// errNotIndexed means a span has no node of its own in the index.
var errNotIndexed = errors.New("span is not an indexed value")

// indexDocument indexes doc as the current document; a malformed document
// leaves no index and the error says why.
func indexDocument(doc []byte) error {
	nodes, err := buildIndex(doc, current.nodes[:0])
	current = docIndex{nodes: nodes[:0]}
	if err != nil {
		return err
	}
	current = docIndex{base: unsafe.SliceData(doc), size: len(doc), nodes: nodes}
	return nil
}

// dropIndex forgets the current index (keeping its storage for the next
// call): the input buffer is reused, so a stale index must never be read.
func dropIndex() { current = docIndex{nodes: current.nodes[:0]} }

// maxIndexedSize keeps node offsets within int32.
const maxIndexedSize = 1<<31 - 1

// States of buildIndex: what may come next.
const (
	stValue        = iota // a value
	stValueOrClose        // after '[': a value or ']'
	stKeyOrClose          // after '{': a key or '}'
	stKey                 // after ',' in an object
	stColon               // after a key
	stCommaOrClose        // after a value inside a container
	stDone                // after the top-level value
)

// buildIndex appends the nodes of doc to nodes. It checks the structure
// (brackets, keys, colons and commas, terminated strings) and leaves the
// grammar of numbers and literals to whoever reads them.
//
// It is one function with the string and scalar scans written inline: in
// WebAssembly a Go function call costs more than scanning a short string.
func buildIndex(doc []byte, nodes []node) ([]node, error) {
	if len(doc) > maxIndexedSize {
		return nodes, errors.New("json: document too large to index")
	}
	// Every value but the first takes a separator byte besides its own, so
	// a document never has more than (len+1)/2 nodes: reserve that once.
	if want := len(nodes) + (len(doc)+1)/2; cap(nodes) < want {
		grown := make([]node, len(nodes), want)
		copy(grown, nodes)
		nodes = grown
	}
	var openBuf [32]int32
	open := openBuf[:0] // indices of the containers not yet closed
	st := stValue
	i := 0
	for i < len(doc) {
		c := doc[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		isKey := false
		switch st {
		case stValue:
		case stCommaOrClose:
			if c == ',' {
				if doc[nodes[open[len(open)-1]].start] == '{' {
					st = stKey
				} else {
					st = stValue
				}
				i++
				continue
			}
			if c != '}' && c != ']' {
				return nodes, errors.New("json: unexpected " + quoteByte(c) + " at offset " + itoa(i))
			}
		case stColon:
			if c != ':' {
				return nodes, errors.New("json: expected ':' at offset " + itoa(i))
			}
			st = stValue
			i++
			continue
		case stKey, stKeyOrClose:
			if c == '"' {
				isKey = true
			} else if c != '}' || st == stKey {
				return nodes, errors.New("json: expected key at offset " + itoa(i))
			}
		case stValueOrClose:
			if c == '}' || c == ',' || c == ':' {
				return nodes, errors.New("json: unexpected " + quoteByte(c) + " at offset " + itoa(i))
			}
		case stDone:
			return nodes, errors.New("json: trailing data at offset " + itoa(i))
		}
		switch c {
		case '"':
			j := i + 1
			for {
				// Eight bytes at a time up to a quote or backslash, then
				// byte by byte: fewer loop iterations, and each costs an
				// interrupt check in the host (engine/plugin/interrupt.go).
				for j+8 <= len(doc) {
					w := *(*uint64)(unsafe.Pointer(&doc[j]))
					if t := hasByte(w, '"') | hasByte(w, '\\'); t != 0 {
						j += bits.TrailingZeros64(t) >> 3
						break
					}
					j += 8
				}
				for j < len(doc) && doc[j] != '"' && doc[j] != '\\' {
					j++
				}
				if j >= len(doc) || doc[j] == '"' {
					break
				}
				j += 2 // a backslash and the byte it escapes
			}
			if j >= len(doc) {
				return nodes, errors.New("json: unterminated string at offset " + itoa(i))
			}
			nodes = append(nodes, node{start: int32(i), end: int32(j + 1), next: int32(len(nodes) + 1)})
			i = j + 1
			if isKey {
				st = stColon
				if i < len(doc) && doc[i] == ':' { // compact JSON: no trip round the loop
					st = stValue
					i++
				}
				continue
			}
		case '{', '[':
			open = append(open, int32(len(nodes)))
			nodes = append(nodes, node{start: int32(i)})
			i++
			if c == '{' {
				st = stKeyOrClose
			} else {
				st = stValueOrClose
			}
			continue
		case '}', ']':
			if st == stValue {
				return nodes, errors.New("json: unexpected " + quoteByte(c) + " at offset " + itoa(i))
			}
			n := open[len(open)-1]
			open = open[:len(open)-1]
			if want := doc[nodes[n].start] + 2; c != want { // '{'+2 == '}', '['+2 == ']'
				return nodes, errors.New("json: " + quoteByte(c) + " at offset " + itoa(i) + " closes " + quoteByte(doc[nodes[n].start]))
			}
			nodes[n].end = int32(i + 1)
			nodes[n].next = int32(len(nodes))
			i++
		case ',', ':':
			return nodes, errors.New("json: unexpected " + quoteByte(c) + " at offset " + itoa(i))
		default: // a number or literal runs to the next delimiter
			j := i + 1
			for j < len(doc) && !scalarStop[doc[j]] {
				j++
			}
			nodes = append(nodes, node{start: int32(i), end: int32(j), next: int32(len(nodes) + 1)})
			i = j
		}
		switch {
		case len(open) == 0:
			st = stDone
		case i < len(doc) && doc[i] == ',': // compact JSON: no trip round the loop
			if doc[nodes[open[len(open)-1]].start] == '{' {
				st = stKey
			} else {
				st = stValue
			}
			i++
		default:
			st = stCommaOrClose
		}
	}
	if st != stDone {
		return nodes, errors.New("json: unexpected end of input")
	}
	return nodes, nil
}

// scalarStop marks the bytes that end a number or literal.
var scalarStop = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\n': true, '\r': true, ':': true, '"': true, '{': true, '[': true}

// hasByte returns, in w's little-endian bytes, the high bit set for the
// first byte equal to b (and perhaps for some after it): the classic
// "has zero byte" test on w^b.
func hasByte(w uint64, b byte) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := w ^ (ones * uint64(b))
	return (x - ones) &^ x & highs
}

// lookupNode returns the index of the node for span s of doc, when doc is
// (a slice of) the current document, and the offset of doc inside it.
func lookupNode(doc []byte, s Span) (int32, int, error) {
	if current.base == nil || len(doc) == 0 {
		return 0, 0, errNotIndexed
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(doc))) - uintptr(unsafe.Pointer(current.base)))
	if off < 0 || off+len(doc) > current.size || s.Start < 0 || s.End > len(doc) {
		return 0, 0, errNotIndexed
	}
	start, end := int32(s.Start+off), int32(s.End+off)
	nodes := current.nodes
	lo, hi := 0, len(nodes) // binary search for the first node at or after start
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if nodes[mid].start < start {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(nodes) || nodes[lo].start != start || nodes[lo].end != end {
		return 0, 0, errNotIndexed
	}
	return int32(lo), off, nil
}

// indexedMembers calls fn for the members of object node n.
func indexedMembers(n int32, off int, fn func(member) bool) (int, error) {
	nodes := current.nodes
	count := 0
	for k := n + 1; k < nodes[n].next; {
		v := k + 1
		m := member{
			keyStart: int(nodes[k].start) - off, keyEnd: int(nodes[k].end) - off,
			value: Span{Start: int(nodes[v].start) - off, End: int(nodes[v].end) - off},
		}
		count++
		if !fn(m) {
			return count, nil
		}
		k = nodes[v].next
	}
	return count, nil
}

// indexedElements calls fn for the elements of array node n.
func indexedElements(n int32, off int, fn func(i int, value Span) bool) {
	nodes := current.nodes
	i := 0
	for k := n + 1; k < nodes[n].next; k = nodes[k].next {
		if !fn(i, Span{Start: int(nodes[k].start) - off, End: int(nodes[k].end) - off}) {
			return
		}
		i++
	}
}
