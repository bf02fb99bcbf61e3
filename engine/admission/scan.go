package admission

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"
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

// field is a node of the paths a scan keeps: a string or bool to fill,
// or the members of an object to descend into.
type field struct {
	str      *string
	flag     *bool
	found    *bool
	children map[string]*field
}

func metadataFields(uid, rv, name *string, found *bool) *field {
	return &field{found: found, children: map[string]*field{"metadata": {children: map[string]*field{
		"uid": {str: uid}, "resourceVersion": {str: rv}, "name": {str: name},
	}}}}
}

// reviewFields are the paths of an AdmissionReview a scan keeps.
func (s *scanned) reviewFields() *field {
	return &field{children: map[string]*field{
		"apiVersion": {str: &s.apiVersion},
		"kind":       {str: &s.kind},
		"request": {children: map[string]*field{
			"uid":         {str: &s.uid},
			"operation":   {str: &s.operation},
			"subResource": {str: &s.subResource},
			"namespace":   {str: &s.namespace},
			"name":        {str: &s.name},
			"dryRun":      {flag: &s.dryRun},
			"resource": {children: map[string]*field{
				"group": {str: &s.group}, "version": {str: &s.version}, "resource": {str: &s.resource},
			}},
			"object":    metadataFields(&s.objUID, &s.objRV, &s.objName, &s.objectFound),
			"oldObject": metadataFields(&s.oldUID, &s.oldRV, &s.oldName, &s.oldObjectFound),
		}},
	}}
}

var scanReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// scanReview reads at most scanLimitBytes of r and returns the keys it
// found. It keeps O(1) memory whatever the body's size, never fails
// (a body it cannot follow yields what was found up to there) and matches
// keys as the API server writes them (exact, case-sensitive).
func scanReview(r io.Reader) scanned {
	var s scanned
	br := scanReaders.Get().(*bufio.Reader)
	lr := &io.LimitedReader{R: r, N: scanLimitBytes}
	br.Reset(lr)
	defer func() {
		br.Reset(nil)
		scanReaders.Put(br)
	}()
	sc := &scan{r: br}
	sc.value(s.reviewFields(), 0)
	s.truncated = sc.err != nil && lr.N == 0
	return s
}

// scanObject returns the metadata keys of a raw object.
func scanObject(raw []byte) (uid, rv, name string) {
	if len(raw) == 0 {
		return "", "", ""
	}
	var found bool
	br := scanReaders.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(raw))
	defer func() {
		br.Reset(nil)
		scanReaders.Put(br)
	}()
	sc := &scan{r: br}
	sc.value(metadataFields(&uid, &rv, &name, &found), 0)
	return uid, rv, name
}

// scan is a small JSON reader that follows only the paths of a field
// tree and skips every other value without keeping it.
type scan struct {
	r   *bufio.Reader
	err error
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
		if f.found != nil {
			*f.found = true
		}
		sc.object(f, depth)
	case b == '"' && f != nil && f.str != nil:
		if s, ok := sc.str(); ok {
			*f.str = s
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
		if f != nil && f.flag != nil {
			*f.flag = string(lit) == "true"
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
		key, _ := sc.str()
		if sc.skipSpace() != ':' {
			sc.err = errSyntax
			return
		}
		sc.value(f.children[key], depth+1)
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

// str reads a string whose opening quote was read and returns it decoded
// when it is at most maxScanString bytes long.
func (sc *scan) str() (string, bool) {
	raw := make([]byte, 0, 64)
	raw = append(raw, '"')
	escaped := false
	for {
		c := sc.next()
		if sc.err != nil {
			return "", false
		}
		raw = append(raw, c)
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", false
			}
			return s, true
		}
		if len(raw) > maxScanString {
			sc.skipStringFrom(escaped)
			return "", false
		}
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
