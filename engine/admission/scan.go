package admission

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

var errSyntax = errors.New("admission review scan: unexpected character")

const (
	// scanLimitBytes bounds how much of a review a scan reads: a body past
	// the cap is read this far for its keys, never kept.
	scanLimitBytes = 64 << 20
	// maxScanString bounds a string a scan keeps (uids, names, versions
	// are far shorter); a longer one is skipped.
	maxScanString = 1024
	// maxScanDepth bounds the nesting the scan follows by recursion;
	// deeper values are skipped without it.
	maxScanDepth = 32
)

// scanned is what a bounded scan of an AdmissionReview found: the keys of
// the write, enough to taint it when the review itself cannot be kept.
type scanned struct {
	apiVersion, kind                       string
	uid, operation, subResource            string
	namespace, name                        string
	group, version, resource               string
	dryRun                                 bool
	objUID, objRV, objName                 string
	oldUID, oldRV, oldName                 string
	objectFound, oldObjectFound, truncated bool
}

// Slots of the values a scan keeps.
const (
	vAPIVersion = iota
	vKind
	vUID
	vOperation
	vSubResource
	vNamespace
	vName
	vDryRun
	vGroup
	vVersion
	vResource
	vObjUID
	vObjRV
	vObjName
	vObjFound
	vOldUID
	vOldRV
	vOldName
	vOldFound
	nValues
)

// field is a node of the paths a scan keeps: the slot of a scalar to keep
// (-1: none), the slot that records that an object was found (-1: none),
// and the members of an object to descend into.
type field struct {
	slot, found int
	children    map[string]*field
}

func leaf(slot int) *field { return &field{slot: slot, found: -1} }

func node(found int, children map[string]*field) *field {
	return &field{slot: -1, found: found, children: children}
}

func metadataFields(uid, rv, name, found int) *field {
	return node(found, map[string]*field{"metadata": node(-1, map[string]*field{
		"uid": leaf(uid), "resourceVersion": leaf(rv), "name": leaf(name),
	})})
}

// reviewTree and objectTree are the paths a scan of a review, or of one
// raw object, keeps; built once, read-only.
var (
	reviewTree = node(-1, map[string]*field{
		"apiVersion": leaf(vAPIVersion),
		"kind":       leaf(vKind),
		"request": node(-1, map[string]*field{
			"uid":         leaf(vUID),
			"operation":   leaf(vOperation),
			"subResource": leaf(vSubResource),
			"namespace":   leaf(vNamespace),
			"name":        leaf(vName),
			"dryRun":      leaf(vDryRun),
			"resource": node(-1, map[string]*field{
				"group": leaf(vGroup), "version": leaf(vVersion), "resource": leaf(vResource),
			}),
			"object":    metadataFields(vObjUID, vObjRV, vObjName, vObjFound),
			"oldObject": metadataFields(vOldUID, vOldRV, vOldName, vOldFound),
		}),
	})
	objectTree = metadataFields(0, 1, 2, -1)
)

var scanReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// scanReview reads at most scanLimitBytes of r and returns the keys it
// found. It keeps O(1) memory whatever the body's size, never fails
// (a body it cannot follow yields what was found up to there) and matches
// keys as the API server writes them (exact, case-sensitive).
func scanReview(r io.Reader) scanned {
	br := scanReaders.Get().(*bufio.Reader)
	lr := &io.LimitedReader{R: r, N: scanLimitBytes}
	br.Reset(lr)
	defer func() {
		br.Reset(nil)
		scanReaders.Put(br)
	}()
	var v [nValues]string
	sc := &scan{r: br, out: v[:]}
	sc.value(reviewTree, 0)
	return scanned{
		apiVersion: v[vAPIVersion], kind: v[vKind],
		uid: v[vUID], operation: v[vOperation], subResource: v[vSubResource],
		namespace: v[vNamespace], name: v[vName],
		group: v[vGroup], version: v[vVersion], resource: v[vResource],
		dryRun: v[vDryRun] == "true",
		objUID: v[vObjUID], objRV: v[vObjRV], objName: v[vObjName],
		oldUID: v[vOldUID], oldRV: v[vOldRV], oldName: v[vOldName],
		objectFound: v[vObjFound] != "", oldObjectFound: v[vOldFound] != "",
		truncated: sc.err != nil && lr.N == 0,
	}
}

// scanObject returns the metadata keys of a raw object.
func scanObject(raw []byte) (uid, rv, name string) {
	if len(raw) == 0 {
		return "", "", ""
	}
	br := scanReaders.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(raw))
	defer func() {
		br.Reset(nil)
		scanReaders.Put(br)
	}()
	var v [3]string
	sc := &scan{r: br, out: v[:]}
	sc.value(objectTree, 0)
	return v[0], v[1], v[2]
}

// scan is a small JSON reader that follows only the paths of a field
// tree and skips every other value without keeping it.
type scan struct {
	r   *bufio.Reader
	err error
	out []string // by field slot
	key []byte   // reused for object keys
}

func (sc *scan) next() byte {
	if sc.err != nil {
		return 0
	}
	b, err := sc.r.ReadByte()
	if err != nil {
		sc.err = err
		return 0
	}
	return b
}

func (sc *scan) skipSpace() byte {
	for {
		b := sc.next()
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b
	}
}

// value reads one value; f says what to keep of it (nil: nothing).
func (sc *scan) value(f *field, depth int) {
	b := sc.skipSpace()
	if sc.err != nil {
		return
	}
	switch {
	case b == '{' && f != nil && f.children != nil && depth < maxScanDepth:
		if f.found >= 0 {
			sc.out[f.found] = "found"
		}
		sc.object(f, depth)
	case b == '"' && f != nil && f.slot >= 0:
		if s, ok := sc.str(); ok {
			sc.out[f.slot] = s
		}
	case b == '"':
		sc.skipString()
	case b == '{' || b == '[':
		sc.skipNested()
	default:
		// true, false, null or a number: read to the next delimiter.
		lit := []byte{b}
		for {
			c, err := sc.r.ReadByte()
			if err != nil {
				sc.err = err
				break
			}
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				_ = sc.r.UnreadByte()
				break
			}
			if len(lit) < 8 {
				lit = append(lit, c)
			}
		}
		if f != nil && f.slot >= 0 && string(lit) == "true" {
			sc.out[f.slot] = "true"
		}
	}
}

// object reads the members of an object whose '{' was read.
func (sc *scan) object(f *field, depth int) {
	b := sc.skipSpace()
	if b == '}' {
		return
	}
	for sc.err == nil {
		if b != '"' {
			sc.err = errSyntax
			return
		}
		child := sc.member(f)
		if sc.skipSpace() != ':' {
			sc.err = errSyntax
			return
		}
		sc.value(child, depth+1)
		switch sc.skipSpace() {
		case ',':
			b = sc.skipSpace()
		case '}':
			return
		default:
			sc.err = errSyntax
			return
		}
	}
}

// member reads an object key whose opening quote was read and returns the
// field it names in f; a plain key is looked up without allocating.
func (sc *scan) member(f *field) *field {
	sc.key = sc.key[:0]
	escaped := false
	for {
		c := sc.next()
		if sc.err != nil {
			return nil
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			if bytes.IndexByte(sc.key, '\\') < 0 {
				return f.children[string(sc.key)]
			}
			var k string
			quoted := append(append([]byte{'"'}, sc.key...), '"')
			if json.Unmarshal(quoted, &k) != nil {
				return nil
			}
			return f.children[k]
		}
		if len(sc.key) >= maxScanString {
			sc.skipStringFrom(escaped)
			return nil
		}
		sc.key = append(sc.key, c)
	}
}

// str reads a string whose opening quote was read and returns it decoded
// when it is at most maxScanString bytes long.
func (sc *scan) str() (string, bool) {
	sc.key = sc.key[:0]
	escaped := false
	for {
		c := sc.next()
		if sc.err != nil {
			return "", false
		}
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			if bytes.IndexByte(sc.key, '\\') < 0 && utf8.Valid(sc.key) {
				return string(sc.key), true
			}
			var v string
			quoted := append(append([]byte{'"'}, sc.key...), '"')
			if json.Unmarshal(quoted, &v) != nil {
				return "", false
			}
			return v, true
		}
		if len(sc.key) >= maxScanString {
			sc.skipStringFrom(escaped)
			return "", false
		}
		sc.key = append(sc.key, c)
	}
}

// skipString skips a string whose opening quote was read, a buffer at a
// time.
func (sc *scan) skipString() { sc.skipStringFrom(false) }

// skipStringFrom skips the rest of a string; escaped tells that the byte
// before was an unpaired backslash.
func (sc *scan) skipStringFrom(escaped bool) {
	carry := 0 // backslashes that ended the previous chunk
	if escaped {
		carry = 1
	}
	for sc.err == nil {
		chunk, err := sc.r.ReadSlice('"')
		switch {
		case err == bufio.ErrBufferFull:
			carry = trailingBackslashes(chunk, carry)
			continue
		case err != nil:
			sc.err = err
			return
		}
		if trailingBackslashes(chunk[:len(chunk)-1], carry)%2 == 0 {
			return // an unescaped quote ends the string
		}
		carry = 0
	}
}

// trailingBackslashes counts the backslashes that end b, adding carry
// when b is nothing but backslashes.
func trailingBackslashes(b []byte, carry int) int {
	n := 0
	for i := len(b) - 1; i >= 0 && b[i] == '\\'; i-- {
		n++
	}
	if n == len(b) {
		return carry + n
	}
	return n
}

// skipNested skips an object or array whose opening bracket was read,
// counting brackets outside strings.
func (sc *scan) skipNested() {
	depth := 1
	for depth > 0 {
		c := sc.next()
		if sc.err != nil {
			return
		}
		switch c {
		case '"':
			sc.skipString()
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
}
