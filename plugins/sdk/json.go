package sdk

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// Span is the position of one JSON value inside a document: doc[Start:End].
// Spans let a plugin find and rewrite a few values of a large object without
// decoding the whole document into Go values.
type Span struct {
	Start, End int
}

// Bytes returns the raw JSON text of the span inside doc.
func (s Span) Bytes(doc []byte) []byte { return doc[s.Start:s.End] }

// Root returns the span of the whole document, without surrounding
// whitespace.
func Root(doc []byte) (Span, error) {
	if whole := Whole(doc); whole.Start < whole.End {
		if _, _, err := lookupNode(doc, whole); err == nil {
			return whole, nil // indexed, so already checked
		}
	}
	start := skipSpace(doc, 0)
	end, err := valueEnd(doc, start)
	if err != nil {
		return Span{}, err
	}
	if rest := skipSpace(doc, end); rest != len(doc) {
		return Span{}, errors.New("json: trailing data at offset " + itoa(rest))
	}
	return Span{Start: start, End: end}, nil
}

// Whole returns the span of doc without surrounding whitespace, without
// scanning it: for input the host has already validated.
func Whole(doc []byte) Span {
	start, end := skipSpace(doc, 0), len(doc)
	for end > start {
		switch doc[end-1] {
		case ' ', '\t', '\n', '\r':
			end--
			continue
		}
		break
	}
	return Span{Start: start, End: end}
}

// Kind reports the JSON type of the value at s: one of '{', '[', '"', 'n'
// (null), 't'/'f' (booleans) or '0' for numbers.
func (s Span) Kind(doc []byte) byte {
	if s.Start >= s.End || s.Start >= len(doc) {
		return 0
	}
	switch c := doc[s.Start]; c {
	case '{', '[', '"', 'n', 't', 'f':
		return c
	default:
		return '0'
	}
}

// Members calls fn for every member of the object at obj, in document order,
// with the member's raw key (still escaped, without quotes) and the span of
// its value. fn returns false to stop early.
func Members(doc []byte, obj Span, fn func(key []byte, value Span) bool) error {
	_, err := eachMember(doc, obj, func(m member) bool { return fn(m.key(doc), m.value) })
	return err
}

// Elements calls fn for every element of the array at arr, in order. fn
// returns false to stop early.
func Elements(doc []byte, arr Span, fn func(i int, value Span) bool) error {
	if n, off, err := lookupNode(doc, arr); err == nil {
		if doc[arr.Start] != '[' {
			return errors.New("json: expected array at offset " + itoa(arr.Start))
		}
		indexedElements(n, off, fn)
		return nil
	}
	i := skipSpace(doc, arr.Start)
	if i >= arr.End || doc[i] != '[' {
		return errors.New("json: expected array at offset " + itoa(arr.Start))
	}
	i = skipSpace(doc, i+1)
	if i < arr.End && doc[i] == ']' {
		return nil
	}
	for n := 0; ; n++ {
		end, err := valueEnd(doc, i)
		if err != nil {
			return err
		}
		if !fn(n, Span{Start: i, End: end}) {
			return nil
		}
		i = skipSpace(doc, end)
		if i >= arr.End {
			return errors.New("json: unterminated array")
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case ']':
			return nil
		default:
			return errors.New("json: unexpected " + quoteByte(doc[i]) + " in array at offset " + itoa(i))
		}
	}
}

// Lookup follows path (object keys) from the object at from and returns the
// span of the value found there; ok is false when a key is missing or a value
// on the way is not an object.
func Lookup(doc []byte, from Span, path ...string) (Span, bool, error) {
	cur := from
	for _, key := range path {
		if cur.Kind(doc) != '{' {
			return Span{}, false, nil
		}
		var found Span
		ok := false
		err := Members(doc, cur, func(k []byte, v Span) bool {
			if KeyEquals(k, key) {
				found, ok = v, true
				return false
			}
			return true
		})
		if err != nil {
			return Span{}, false, err
		}
		if !ok {
			return Span{}, false, nil
		}
		cur = found
	}
	return cur, true, nil
}

// StringValue returns the decoded string at s; ok is false when the value is
// not a JSON string.
func StringValue(doc []byte, s Span) (string, bool) {
	if s.Kind(doc) != '"' || s.End-s.Start < 2 {
		return "", false
	}
	str, err := Unquote(doc[s.Start+1 : s.End-1])
	if err != nil {
		return "", false
	}
	return str, true
}

// KeyEquals reports whether a raw (escaped, unquoted) key equals want.
func KeyEquals(raw []byte, want string) bool {
	if !hasEscape(raw) {
		return string(raw) == want
	}
	s, err := Unquote(raw)
	return err == nil && s == want
}

// Unquote decodes the JSON escapes of a raw string body (without quotes).
func Unquote(raw []byte) (string, error) {
	if !hasEscape(raw) {
		return string(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", errors.New("json: truncated escape")
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, err := decodeU(raw[i+1:])
			if err != nil {
				return "", err
			}
			i += n
			out = utf8.AppendRune(out, r)
		default:
			return "", errors.New("json: invalid escape \\" + string(rune(raw[i])))
		}
	}
	return string(out), nil
}

// decodeU decodes the hex digits after \u (and a following low surrogate),
// returning the rune and how many bytes after the 'u' it consumed.
func decodeU(b []byte) (rune, int, error) {
	r1, ok := hex4(b)
	if !ok {
		return 0, 0, errors.New("json: invalid \\u escape")
	}
	if r1 < 0xD800 || r1 > 0xDBFF {
		if r1 >= 0xDC00 && r1 <= 0xDFFF {
			return utf8.RuneError, 4, nil
		}
		return r1, 4, nil
	}
	if len(b) >= 10 && b[4] == '\\' && b[5] == 'u' {
		if r2, ok := hex4(b[6:]); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
			return (r1-0xD800)<<10 | (r2 - 0xDC00) + 0x10000, 10, nil
		}
	}
	return utf8.RuneError, 4, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// AppendQuoted appends s to dst as a JSON string literal.
func AppendQuoted(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
	}
	return append(dst, '"')
}

// Editor collects replacements of spans of one document and applies them in
// a single pass, so unchanged parts of the object are copied byte for byte.
// Replaced spans must not overlap.
type Editor struct {
	doc   []byte
	edits []edit
}

type edit struct {
	start, end int
	repl       []byte
}

// NewEditor returns an Editor for doc. doc must not change while the Editor
// is in use.
func NewEditor(doc []byte) *Editor { return &Editor{doc: doc} }

// Replace replaces the value at s with value (raw JSON).
func (e *Editor) Replace(s Span, value []byte) {
	e.edits = append(e.edits, edit{start: s.Start, end: s.End, repl: value})
}

// ReplaceString replaces the value at s with the JSON string v.
func (e *Editor) ReplaceString(s Span, v string) {
	e.Replace(s, AppendQuoted(nil, v))
}

// DeleteMembers rewrites the object at obj without the members for which
// drop returns true (drop receives the raw, still escaped key). It returns
// how many members it removed; with none removed the document is left as is.
func (e *Editor) DeleteMembers(obj Span, drop func(key []byte) bool) (int, error) {
	var kept []member
	removed := 0
	_, err := eachMember(e.doc, obj, func(m member) bool {
		if drop(m.key(e.doc)) {
			removed++
		} else {
			kept = append(kept, m)
		}
		return true
	})
	if err != nil || removed == 0 {
		return 0, err
	}
	size := 2
	for _, m := range kept {
		size += m.value.End - m.keyStart + 1
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, m := range kept {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e.doc[m.keyStart:m.value.End]...)
	}
	out = append(out, '}')
	e.Replace(obj, out)
	return removed, nil
}

// Changed reports whether any replacement is pending.
func (e *Editor) Changed() bool { return len(e.edits) > 0 }

// Bytes returns the edited document. Without edits it returns the original
// document itself.
func (e *Editor) Bytes() ([]byte, error) {
	if len(e.edits) == 0 {
		return e.doc, nil
	}
	// Insertion sort: there are few edits, and sort.Slice's reflection is
	// slow in WebAssembly.
	for i := 1; i < len(e.edits); i++ {
		for j := i; j > 0 && e.edits[j].start < e.edits[j-1].start; j-- {
			e.edits[j], e.edits[j-1] = e.edits[j-1], e.edits[j]
		}
	}
	size := len(e.doc)
	prev := 0
	for _, ed := range e.edits {
		if ed.start < prev || ed.end < ed.start || ed.end > len(e.doc) {
			return nil, errors.New("json: overlapping or invalid edit at offset " + itoa(ed.start))
		}
		prev = ed.end
		size += len(ed.repl) - (ed.end - ed.start)
	}
	out := make([]byte, 0, size)
	pos := 0
	for _, ed := range e.edits {
		out = append(out, e.doc[pos:ed.start]...)
		out = append(out, ed.repl...)
		pos = ed.end
	}
	return append(out, e.doc[pos:]...), nil
}

// member is one "key": value pair; keyStart is the opening quote of the key.
type member struct {
	keyStart, keyEnd int // keyEnd is just after the closing quote
	value            Span
}

func (m member) key(doc []byte) []byte { return doc[m.keyStart+1 : m.keyEnd-1] }

func eachMember(doc []byte, obj Span, fn func(member) bool) (int, error) {
	if n, off, err := lookupNode(doc, obj); err == nil {
		if doc[obj.Start] != '{' {
			return 0, errors.New("json: expected object at offset " + itoa(obj.Start))
		}
		return indexedMembers(n, off, fn)
	}
	i := skipSpace(doc, obj.Start)
	if i >= obj.End || doc[i] != '{' {
		return 0, errors.New("json: expected object at offset " + itoa(obj.Start))
	}
	i = skipSpace(doc, i+1)
	if i < obj.End && doc[i] == '}' {
		return 0, nil
	}
	for n := 0; ; n++ {
		if i >= obj.End || doc[i] != '"' {
			return n, errors.New("json: expected key at offset " + itoa(i))
		}
		keyEnd, err := stringEnd(doc, i)
		if err != nil {
			return n, err
		}
		j := skipSpace(doc, keyEnd)
		if j >= obj.End || doc[j] != ':' {
			return n, errors.New("json: expected ':' at offset " + itoa(j))
		}
		vs := skipSpace(doc, j+1)
		ve, err := valueEnd(doc, vs)
		if err != nil {
			return n, err
		}
		if !fn(member{keyStart: i, keyEnd: keyEnd, value: Span{Start: vs, End: ve}}) {
			return n + 1, nil
		}
		i = skipSpace(doc, ve)
		if i >= obj.End {
			return n + 1, errors.New("json: unterminated object")
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case '}':
			return n + 1, nil
		default:
			return n + 1, errors.New("json: unexpected " + quoteByte(doc[i]) + " in object at offset " + itoa(i))
		}
	}
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// stringEnd returns the offset just after the closing quote of the string
// whose opening quote is at i. It jumps from quote to quote with
// bytes.IndexByte, which is far cheaper in WASM than a byte-by-byte loop.
func stringEnd(doc []byte, i int) (int, error) {
	j := i + 1
	for j <= len(doc) {
		k := bytes.IndexByte(doc[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		backslashes := 0
		for b := q - 1; b > i && doc[b] == '\\'; b-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
	return 0, errors.New("json: unterminated string at offset " + itoa(i))
}

// valueEnd returns the offset just after the value starting at i. It checks
// only as much structure as skipping needs: the host hands plugins valid JSON.
func valueEnd(doc []byte, i int) (int, error) {
	if i >= len(doc) {
		return 0, errors.New("json: unexpected end of input")
	}
	switch c := doc[i]; c {
	case '"':
		return stringEnd(doc, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				end, err := stringEnd(doc, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("json: unterminated " + string(rune(c)) + " at offset " + itoa(i))
	default:
		j := i
		for j < len(doc) {
			switch doc[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r', ':':
				if j == i {
					return 0, errors.New("json: unexpected " + quoteByte(doc[j]) + " at offset " + itoa(j))
				}
				return j, nil
			}
			j++
		}
		if j == i {
			return 0, errors.New("json: unexpected end of input")
		}
		return j, nil
	}
}
