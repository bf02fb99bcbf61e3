package transform

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file writes YAML straight from the values an unstructured object
// holds, byte for byte as marshalNode (yaml.Node tree + go.yaml.in/yaml/v3
// encoder, indent 2, compact sequences) writes them: files already in
// users' repositories must not change after an upgrade. yaml.v3's emitter
// keeps every event of the document in a queue and cost ~100 µs per
// sanitized Deployment; this writer appends to one buffer.
//
// The scalar rules below (which strings resolve to another type, when a
// string may be plain, single- or double-quoted or a literal block, and
// how each style is written) are ported from go.yaml.in/yaml/v3 v3.0.6
// (resolve.go, Apache-2.0; emitterc.go, MIT, ported from libyaml), reduced
// to what an encoder with unlimited line width and no comments, anchors or
// tags does. Anything outside what is ported here returns errSlowPath and
// the whole object goes through yaml.v3: invalid UTF-8 (yaml.v3 writes
// !!binary), U+2028/U+2029 (yaml.v3 breaks the line inside quotes), a
// leading byte order mark, keys that cannot be simple keys (line breaks,
// more than 128 bytes), types other than those of decoded JSON. The
// differential tests in emit_test.go hold both paths to the same bytes.

// errSlowPath says that the object needs yaml.v3 to get the same bytes.
var errSlowPath = errors.New("needs the yaml.v3 encoder")

// emitter appends the YAML of one object to buf.
type emitter struct {
	buf []byte
	// keys is a stack of the keys of the mappings being written: each
	// mapping sorts its own keys at the end and truncates them when done.
	keys []string
}

// appendYAML writes obj as marshalNode would, or returns errSlowPath.
func appendYAML(buf []byte, obj map[string]interface{}) ([]byte, error) {
	var keys [64]string
	e := emitter{buf: buf, keys: keys[:0]}
	if len(obj) == 0 {
		e.buf = append(e.buf, "{}\n"...)
		return e.buf, nil
	}
	if err := e.mapping(obj, topLevelFirst, true, 0, false); err != nil {
		return nil, err
	}
	return e.buf, nil
}

func (e *emitter) indent(n int) {
	for ; n > 0; n-- {
		e.buf = append(e.buf, ' ')
	}
}

// mapping writes a non-empty block mapping whose keys start at column
// indent; inline says the first key follows a "- " already written.
func (e *emitter) mapping(m map[string]interface{}, first []string, top bool, indent int, inline bool) error {
	start := len(e.keys)
	defer func() { e.keys = e.keys[:start] }()
	for _, k := range first {
		if _, ok := m[k]; ok {
			e.keys = append(e.keys, k)
		}
	}
	sortFrom := len(e.keys)
	for k := range m {
		if !contains(first, k) {
			e.keys = append(e.keys, k)
		}
	}
	slices.Sort(e.keys[sortFrom:])
	end := len(e.keys)
	for i := start; i < end; i++ {
		k := e.keys[i]
		if i > start || !inline {
			e.indent(indent)
		}
		if err := e.key(k); err != nil {
			return err
		}
		e.buf = append(e.buf, ':')
		v := m[k]
		if sub, ok := v.(map[string]interface{}); ok && top && k == "metadata" && len(sub) > 0 {
			e.buf = append(e.buf, '\n')
			if err := e.mapping(sub, metadataFirst, false, indent+2, false); err != nil {
				return err
			}
			continue
		}
		if err := e.value(v, indent, false); err != nil {
			return err
		}
	}
	return nil
}

// value writes v after "key:" (inSeq false: a mapping at column indent)
// or after "-" (inSeq true: a sequence at column indent), up to and
// including the end of its last line.
func (e *emitter) value(v interface{}, indent int, inSeq bool) error {
	switch t := v.(type) {
	case nil:
		e.buf = append(e.buf, " null\n"...)
	case string:
		return e.stringValue(t, indent+2)
	case bool:
		if t {
			e.buf = append(e.buf, " true\n"...)
		} else {
			e.buf = append(e.buf, " false\n"...)
		}
	case int64:
		e.buf = append(e.buf, ' ')
		e.buf = strconv.AppendInt(e.buf, t, 10)
		e.buf = append(e.buf, '\n')
	case int:
		e.buf = append(e.buf, ' ')
		e.buf = strconv.AppendInt(e.buf, int64(t), 10)
		e.buf = append(e.buf, '\n')
	case int32:
		e.buf = append(e.buf, ' ')
		e.buf = strconv.AppendInt(e.buf, int64(t), 10)
		e.buf = append(e.buf, '\n')
	case uint:
		e.buf = append(e.buf, ' ')
		e.buf = strconv.AppendUint(e.buf, uint64(t), 10)
		e.buf = append(e.buf, '\n')
	case uint32:
		e.buf = append(e.buf, ' ')
		e.buf = strconv.AppendUint(e.buf, uint64(t), 10)
		e.buf = append(e.buf, '\n')
	case uint64:
		e.buf = append(e.buf, ' ')
		e.buf = strconv.AppendUint(e.buf, t, 10)
		e.buf = append(e.buf, '\n')
	case float64:
		return e.float(floatText(t, 64))
	case float32:
		return e.float(floatText(float64(t), 32))
	case map[string]interface{}:
		if len(t) == 0 {
			e.buf = append(e.buf, " {}\n"...)
			return nil
		}
		if inSeq {
			// "- a: 1": the mapping's keys line up after the dash.
			e.buf = append(e.buf, ' ')
			return e.mapping(t, nil, false, indent+2, true)
		}
		e.buf = append(e.buf, '\n')
		return e.mapping(t, nil, false, indent+2, false)
	case []interface{}:
		if len(t) == 0 {
			e.buf = append(e.buf, " []\n"...)
			return nil
		}
		if inSeq {
			// "- - a": a sequence in a sequence starts after the dash.
			e.buf = append(e.buf, ' ')
			return e.sequence(t, indent+2, true)
		}
		// Compact: a mapping's sequence value starts at the key's column.
		e.buf = append(e.buf, '\n')
		return e.sequence(t, indent, false)
	default:
		return errSlowPath
	}
	return nil
}

// sequence writes a non-empty block sequence with its dashes at column
// indent; inline says the first dash follows a "- " already written.
func (e *emitter) sequence(s []interface{}, indent int, inline bool) error {
	for i, v := range s {
		if i > 0 || !inline {
			e.indent(indent)
		}
		e.buf = append(e.buf, '-')
		if err := e.value(v, indent, true); err != nil {
			return err
		}
	}
	return nil
}

// float writes the text floatNode gives, which yaml.v3 writes plain when
// it reads back as a float (it always does for strconv's output, but a
// tag would be written otherwise: leave that to yaml.v3).
func (e *emitter) float(s string) error {
	if resolveTag(s) != tagFloat {
		return errSlowPath
	}
	e.buf = append(e.buf, ' ')
	e.buf = append(e.buf, s...)
	e.buf = append(e.buf, '\n')
	return nil
}

// scalarStyle is how yaml.v3 writes a string.
type scalarStyle uint8

const (
	stylePlain scalarStyle = iota
	styleSingle
	styleDouble
	styleLiteral
)

// key writes a mapping key as a simple key.
func (e *emitter) key(s string) error {
	a, ok := analyze(s)
	if !ok || a.multiline || len(s) > 128 {
		return errSlowPath
	}
	style := styleDouble
	if !forceQuote(s) {
		style = stylePlain
		if !a.blockPlainAllowed || len(s) == 0 {
			style = styleSingle
		}
		if style == styleSingle && !a.singleQuotedAllowed {
			style = styleDouble
		}
	}
	e.scalar(s, style)
	return nil
}

// stringValue writes a string mapping value or sequence item, with its
// leading space and final line break. A literal block's lines are
// indented to blockIndent.
func (e *emitter) stringValue(s string, blockIndent int) error {
	a, ok := analyze(s)
	if !ok {
		return errSlowPath
	}
	var style scalarStyle
	switch {
	case strings.IndexByte(s, '\n') >= 0:
		style = styleLiteral
		if !a.blockAllowed {
			style = styleDouble
		}
	case forceQuote(s):
		style = styleDouble
	default:
		if !a.blockPlainAllowed {
			style = styleSingle
			if !a.singleQuotedAllowed {
				style = styleDouble
			}
		}
	}
	e.buf = append(e.buf, ' ')
	if style == styleLiteral {
		e.literal(s, blockIndent)
		return nil
	}
	e.scalar(s, style)
	e.buf = append(e.buf, '\n')
	return nil
}

// forceQuote reports whether yaml.v3 double-quotes s: it reads as
// another type (YAML 1.2 with yaml.v3's extras), or stringNode asks for
// quotes (YAML 1.1 booleans and sexagesimal numbers).
func forceQuote(s string) bool {
	if yaml11Bools[s] {
		return true
	}
	if len(s) > 0 && (s[0] == '+' || s[0] == '-' || s[0] >= '0' && s[0] <= '9') &&
		strings.IndexByte(s, ':') >= 0 && base60Float.MatchString(s) {
		return true
	}
	return resolveTag(s) != tagStr
}

func (e *emitter) scalar(s string, style scalarStyle) {
	switch style {
	case stylePlain:
		e.buf = append(e.buf, s...)
	case styleSingle:
		e.buf = append(e.buf, '\'')
		for {
			i := strings.IndexByte(s, '\'')
			if i < 0 {
				break
			}
			e.buf = append(e.buf, s[:i+1]...)
			e.buf = append(e.buf, '\'')
			s = s[i+1:]
		}
		e.buf = append(e.buf, s...)
		e.buf = append(e.buf, '\'')
	default:
		e.doubleQuoted(s)
	}
}

// literal writes a literal block scalar (yaml_emitter_write_literal_scalar
// with its block scalar hints). analyze has ruled out every line break
// but '\n' inside a block.
func (e *emitter) literal(s string, indent int) {
	e.buf = append(e.buf, '|')
	if s[0] == ' ' || s[0] == '\n' {
		e.buf = append(e.buf, '2') // the encoder's indent
	}
	switch {
	case s[len(s)-1] != '\n':
		e.buf = append(e.buf, '-')
	case len(s) == 1 || s[len(s)-2] == '\n':
		e.buf = append(e.buf, '+')
	}
	e.buf = append(e.buf, '\n')
	for len(s) > 0 {
		line := s
		i := strings.IndexByte(s, '\n')
		if i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if line != "" {
			e.indent(indent)
			e.buf = append(e.buf, line...)
		}
		e.buf = append(e.buf, '\n')
	}
}

// doubleQuoted is yaml_emitter_write_double_quoted_scalar without line
// folding (the width is unlimited); analyze has ruled out a leading byte
// order mark, which makes yaml.v3 escape every character.
func (e *emitter) doubleQuoted(s string) {
	e.buf = append(e.buf, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if isPrintable(s, i) && !isBreak(s, i) && b != '"' && b != '\\' {
			w := width(b)
			e.buf = append(e.buf, s[i:i+w]...)
			i += w
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		i += w
		e.buf = append(e.buf, '\\')
		switch r {
		case 0x00:
			e.buf = append(e.buf, '0')
		case 0x07:
			e.buf = append(e.buf, 'a')
		case 0x08:
			e.buf = append(e.buf, 'b')
		case 0x09:
			e.buf = append(e.buf, 't')
		case 0x0A:
			e.buf = append(e.buf, 'n')
		case 0x0b:
			e.buf = append(e.buf, 'v')
		case 0x0c:
			e.buf = append(e.buf, 'f')
		case 0x0d:
			e.buf = append(e.buf, 'r')
		case 0x1b:
			e.buf = append(e.buf, 'e')
		case 0x22:
			e.buf = append(e.buf, '"')
		case 0x5c:
			e.buf = append(e.buf, '\\')
		case 0x85:
			e.buf = append(e.buf, 'N')
		case 0xA0:
			e.buf = append(e.buf, '_')
		case 0x2028:
			e.buf = append(e.buf, 'L')
		case 0x2029:
			e.buf = append(e.buf, 'P')
		default:
			digits := 8
			switch {
			case r <= 0xFF:
				e.buf = append(e.buf, 'x')
				digits = 2
			case r <= 0xFFFF:
				e.buf = append(e.buf, 'u')
				digits = 4
			default:
				e.buf = append(e.buf, 'U')
			}
			for k := (digits - 1) * 4; k >= 0; k -= 4 {
				e.buf = append(e.buf, "0123456789ABCDEF"[(r>>uint(k))&0x0F])
			}
		}
	}
	e.buf = append(e.buf, '"')
}

// scalarAnalysis is what yaml_emitter_analyze_scalar finds out about a
// string in block context.
type scalarAnalysis struct {
	multiline           bool
	blockPlainAllowed   bool
	singleQuotedAllowed bool
	blockAllowed        bool
}

// analyze ports yaml_emitter_analyze_scalar (unicode output on, block
// context). ok is false for strings left to yaml.v3 (see the file
// comment).
func analyze(s string) (a scalarAnalysis, ok bool) {
	if len(s) == 0 {
		return scalarAnalysis{blockPlainAllowed: true, singleQuotedAllowed: true}, true
	}
	if isPlainWord(s) {
		return scalarAnalysis{blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: true}, true
	}
	if !utf8.ValidString(s) || strings.HasPrefix(s, "\uFEFF") ||
		strings.Contains(s, "\u2028") || strings.Contains(s, "\u2029") {
		return a, false
	}
	var (
		blockIndicators, lineBreaks, specialCharacters, tabCharacters bool
		leadingSpace, leadingBreak, trailingSpace, trailingBreak      bool
		breakSpace, spaceBreak, previousSpace, previousBreak          bool
	)
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		blockIndicators = true
	}
	precededByWhitespace := true
	for i, w := 0, 0; i < len(s); i += w {
		c := s[i]
		w = width(c)
		followedByWhitespace := i+w >= len(s) || isBlank(s, i+w)
		if i == 0 {
			switch c {
			case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
				blockIndicators = true
			case '?', ':', '-':
				if followedByWhitespace {
					blockIndicators = true
				}
			}
		} else {
			switch c {
			case ':':
				if followedByWhitespace {
					blockIndicators = true
				}
			case '#':
				if precededByWhitespace {
					blockIndicators = true
				}
			}
		}
		if c == '\t' {
			tabCharacters = true
		} else if !isPrintable(s, i) {
			specialCharacters = true
		}
		switch {
		case c == ' ':
			if i == 0 {
				leadingSpace = true
			}
			if i+w == len(s) {
				trailingSpace = true
			}
			if previousBreak {
				breakSpace = true
			}
			previousSpace, previousBreak = true, false
		case isBreak(s, i):
			lineBreaks = true
			if i == 0 {
				leadingBreak = true
			}
			if i+w == len(s) {
				trailingBreak = true
			}
			if previousSpace {
				spaceBreak = true
			}
			previousSpace, previousBreak = false, true
		default:
			previousSpace, previousBreak = false, false
		}
		precededByWhitespace = isBlankz(s, i)
	}
	a = scalarAnalysis{multiline: lineBreaks, blockPlainAllowed: true, singleQuotedAllowed: true, blockAllowed: true}
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak {
		a.blockPlainAllowed = false
	}
	if trailingSpace {
		a.blockAllowed = false
	}
	if breakSpace {
		a.blockPlainAllowed = false
		a.singleQuotedAllowed = false
	}
	if spaceBreak || tabCharacters || specialCharacters {
		a.blockPlainAllowed = false
		a.singleQuotedAllowed = false
	}
	if spaceBreak || specialCharacters {
		a.blockAllowed = false
	}
	if lineBreaks || blockIndicators {
		a.blockPlainAllowed = false
	}
	return a, true
}

// wordByte marks the ASCII bytes that set none of analyze's flags
// anywhere in a string: letters, digits, '.', '/', '_' and, past the
// first byte, '-'.
var wordByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "0123456789./_-" {
		t[c] = true
	}
	return t
}()

// isPlainWord is analyze's shortcut for the common names, labels and
// images: only word bytes, not starting with '-' and not "...".
func isPlainWord(s string) bool {
	if s[0] == '-' || strings.HasPrefix(s, "...") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !wordByte[s[i]] {
			return false
		}
	}
	return true
}

func width(b byte) int {
	switch {
	case b&0x80 == 0x00:
		return 1
	case b&0xE0 == 0xC0:
		return 2
	case b&0xF0 == 0xE0:
		return 3
	case b&0xF8 == 0xF0:
		return 4
	}
	return 0
}

func isBlank(s string, i int) bool { return s[i] == ' ' || s[i] == '\t' }

// isBreak is yaml.v3's is_break; s is valid UTF-8, so the bytes after a
// lead byte exist.
func isBreak(s string, i int) bool {
	switch s[i] {
	case '\r', '\n':
		return true
	case 0xC2:
		return s[i+1] == 0x85
	case 0xE2:
		return s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9)
	}
	return false
}

func isBlankz(s string, i int) bool { return isBlank(s, i) || isBreak(s, i) || s[i] == 0 }

// isPrintable is yaml.v3's is_printable (which, among others, counts
// four-byte characters as not printable).
func isPrintable(s string, i int) bool {
	b := s[i]
	return b == 0x0A ||
		b >= 0x20 && b <= 0x7E ||
		b == 0xC2 && s[i+1] >= 0xA0 ||
		b > 0xC2 && b < 0xED ||
		b == 0xED && s[i+1] < 0xA0 ||
		b == 0xEE ||
		b == 0xEF && !(s[i+1] == 0xBB && s[i+2] == 0xBF) && !(s[i+1] == 0xBF && (s[i+2] == 0xBE || s[i+2] == 0xBF))
}

// resolvedTag is the type yaml.v3 reads a plain scalar as.
type resolvedTag uint8

const (
	tagStr resolvedTag = iota
	tagOther
	tagFloat
)

// resolveTag ports yaml.v3's resolve("", s) as far as the encoder needs
// it: whether s reads back as a string, a float or something else.
func resolveTag(s string) resolvedTag {
	if s == "" {
		return tagOther // null
	}
	switch c := s[0]; {
	case c == '.':
		switch s {
		case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF":
			return tagFloat
		}
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return tagFloat
		}
		return tagStr
	case c == '+' || c == '-' || c >= '0' && c <= '9':
		switch s {
		case "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
			return tagFloat
		}
		return resolveNumber(s)
	case strings.IndexByte("yYnNtTfFoO~<", c) >= 0:
		switch s {
		case "true", "True", "TRUE", "false", "False", "FALSE", "~", "null", "Null", "NULL", "<<":
			return tagOther
		}
	}
	return tagStr
}

// resolveNumber is resolve's 'D' and 'S' branch: timestamp, int, float,
// binary and octal.
func resolveNumber(in string) resolvedTag {
	if isTimestamp(in) {
		return tagOther
	}
	plain := strings.ReplaceAll(in, "_", "")
	// A failed strconv parse allocates its error: skip the integer parses
	// for what cannot be one ("100%", "1.27"), as most such strings are.
	if mayBeInt(plain) {
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return tagOther
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return tagOther
		}
	}
	if yamlStyleFloat(plain) {
		if _, err := strconv.ParseFloat(plain, 64); err == nil {
			return tagFloat
		}
	}
	if strings.HasPrefix(plain, "0b") {
		if _, err := strconv.ParseInt(plain[2:], 2, 64); err == nil {
			return tagOther
		}
		if _, err := strconv.ParseUint(plain[2:], 2, 64); err == nil {
			return tagOther
		}
	} else if strings.HasPrefix(plain, "-0b") {
		if _, err := strconv.ParseInt("-"+plain[3:], 2, 64); err == nil {
			return tagOther
		}
	}
	if strings.HasPrefix(plain, "0o") {
		if _, err := strconv.ParseInt(plain[2:], 8, 64); err == nil {
			return tagOther
		}
		if _, err := strconv.ParseUint(plain[2:], 8, 64); err == nil {
			return tagOther
		}
	} else if strings.HasPrefix(plain, "-0o") {
		if _, err := strconv.ParseInt("-"+plain[3:], 8, 64); err == nil {
			return tagOther
		}
	}
	return tagStr
}

// mayBeInt is false when s holds a byte that strconv.ParseInt and
// ParseUint with base 0 reject in any position: anything but digits,
// hex letters, the prefix letters x, o and b, underscores and signs.
func mayBeInt(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F',
			c == 'x', c == 'X', c == 'o', c == 'O', c == '_', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}

// yamlStyleFloat matches ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
// (yaml.v3's yamlStyleFloat) without a regexp.
func yamlStyleFloat(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	} else {
		if digits() == 0 {
			return false
		}
		if i < len(s) && s[i] == '.' {
			i++
			digits()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// timestampFormats are yaml.v3's allowedTimestampFormats.
var timestampFormats = []string{
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

// isTimestamp is yaml.v3's parseTimestamp: four digits and a dash, then
// one of its layouts.
func isTimestamp(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			break
		}
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, layout := range timestampFormats {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}
