package admission

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// decodeReview decodes body into a review exactly as encoding/json's
// Unmarshal does. Reviews as the API server writes them take a fast path:
// one pass over the bytes that validates the whole document, keeps the
// handler's fields, leaves object and oldObject as sub-slices of body (no
// copy: the request keeps body until a worker is done with it) and reads
// their metadata keys for the request's taint on the way. Whatever the
// fast path is not sure to read as encoding/json would (a syntax error, a
// value of another type or null in a field the handler reads, a duplicate
// or case-folded key, an escaped string, deep nesting) goes to
// encoding/json, which then decides: the fast path only ever accepts what
// encoding/json accepts, with the same result (FuzzDecodeReview).
func decodeReview(body []byte) (review, error) {
	var rv review
	d := fastDecoder{b: body}
	if d.review(&rv) {
		return rv, nil
	}
	rv = review{}
	if err := json.Unmarshal(body, &rv); err != nil {
		return review{}, fmt.Errorf("decoding admission review: %w", err)
	}
	return rv, nil
}

// maxFastDepth bounds the nesting the fast path follows by recursion;
// deeper documents go to encoding/json (which allows 10,000 levels).
const maxFastDepth = 256

// strSpecial marks the bytes a string scan stops at: the closing quote,
// a backslash, control characters (invalid in JSON strings) and bytes
// outside ASCII (which must then be valid UTF-8 to be kept as they are).
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// fastDecoder is the fast path's cursor. Every method returns false when
// the fast path gives up; b[i] is then meaningless.
type fastDecoder struct {
	b []byte
	i int
	// strs collects the spans of the strings a request keeps, turned
	// into one string (one allocation) at the end.
	strs []strSpan
	// spans backs strs for a usual review (about 20 strings).
	spans [32]strSpan
	// oddNumber is set by a number with an exponent or over 300
	// characters: one that might not decode into a float64.
	oddNumber bool
}

type strSpan struct {
	dst        *string
	start, end int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (d *fastDecoder) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

// str reads a string at b[i] == '"' and returns its contents' bounds;
// plain is true when it has no escape and is valid UTF-8, so that its
// bytes are its value.
func (d *fastDecoder) str() (start, end int, plain, ok bool) {
	d.i++
	start = d.i
	plain, ascii := true, true
	for d.i < len(d.b) {
		c := d.b[d.i]
		if !strSpecial[c] {
			d.i++
			continue
		}
		switch {
		case c == '"':
			end = d.i
			d.i++
			if !ascii && !utf8.Valid(d.b[start:end]) {
				plain = false
			}
			return start, end, plain, true
		case c == '\\':
			plain = false
			if d.i+1 >= len(d.b) {
				return 0, 0, false, false
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.b) {
					return 0, 0, false, false
				}
				for _, h := range d.b[d.i+2 : d.i+6] {
					if !isHex(h) {
						return 0, 0, false, false
					}
				}
				d.i += 6
			default:
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		default: // >= 0x80: checked once the string ends
			ascii = false
			d.i++
		}
	}
	return 0, 0, false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skip reads and validates any value.
func (d *fastDecoder) skip(depth int) bool {
	switch d.peek() {
	case '"':
		_, _, _, ok := d.str()
		return ok
	case '{':
		if depth >= maxFastDepth {
			return false
		}
		return d.object(func(int, int, bool) bool { return d.skip(depth + 1) })
	case '[':
		if depth >= maxFastDepth {
			return false
		}
		return d.array(func() bool { return d.skip(depth + 1) })
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		return d.number()
	}
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (d *fastDecoder) number() bool {
	b, i := d.b, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == n {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		d.oddNumber = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == n {
			return false
		}
	}
	if i-d.i > 300 {
		d.oddNumber = true
	}
	d.i = i
	return true
}

// object reads an object at b[i] == '{', calling member for each key
// (its bounds and whether it is plain) with i at the value.
func (d *fastDecoder) object(member func(start, end int, plain bool) bool) bool {
	d.i++
	if d.peek() == '}' {
		d.i++
		return true
	}
	for {
		if d.peek() != '"' {
			return false
		}
		start, end, plain, ok := d.str()
		if !ok || d.peek() != ':' {
			return false
		}
		d.i++
		d.ws()
		if !member(start, end, plain) {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// array reads an array at b[i] == '[', calling elem with i at each value.
func (d *fastDecoder) array(elem func() bool) bool {
	d.i++
	if d.peek() == ']' {
		d.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			return false
		}
	}
}

// field returns the index of the member key names among names, -1 when it
// names none. ok is false when encoding/json might match it to a field
// the fast path cannot tell: an escaped or non-ASCII key, or one that
// equals a name but for case (encoding/json folds case).
func (d *fastDecoder) field(start, end int, plain bool, names []string) (idx int, ok bool) {
	key := d.b[start:end]
	if !plain {
		return -1, false
	}
	for n, name := range names {
		if string(key) == name {
			return n, true
		}
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return -1, false
		}
	}
	for _, name := range names {
		if asciiEqualFold(key, name) {
			return -1, false
		}
	}
	return -1, true
}

// asciiEqualFold compares ASCII a and b regardless of case.
func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// once marks field n seen in *seen; false when it was seen before (a
// duplicate key, where encoding/json merges).
func once(seen *uint32, n int) bool {
	if *seen&(1<<n) != 0 {
		return false
	}
	*seen |= 1 << n
	return true
}

// keep reads a plain string into *dst (set when the strings are built).
func (d *fastDecoder) keep(dst *string) bool {
	if d.peek() != '"' {
		return false
	}
	start, end, plain, ok := d.str()
	if !ok || !plain {
		return false
	}
	d.strs = append(d.strs, strSpan{dst: dst, start: start, end: end})
	return true
}

var (
	reviewNames   = []string{"apiVersion", "kind", "request"}
	requestNames  = []string{"uid", "resource", "subResource", "name", "namespace", "operation", "userInfo", "object", "oldObject", "dryRun"}
	resourceNames = []string{"group", "version", "resource"}
	userNames     = []string{"username", "uid", "groups", "extra"}
)

// review reads the whole document into rv.
func (d *fastDecoder) review(rv *review) bool {
	d.strs = d.spans[:0]
	if d.peek() != '{' {
		return false
	}
	var seen uint32
	ok := d.object(func(start, end int, plain bool) bool {
		n, ok := d.field(start, end, plain, reviewNames)
		switch {
		case !ok:
			return false
		case n < 0:
			return d.skip(1)
		case !once(&seen, n):
			return false
		}
		switch n {
		case 0:
			return d.keep(&rv.APIVersion)
		case 1:
			return d.keep(&rv.Kind)
		default:
			if d.peek() != '{' {
				return false
			}
			rv.Request = &request{}
			return d.request(rv.Request)
		}
	})
	if !ok {
		return false
	}
	if d.peek() != 0 || d.i != len(d.b) {
		return false // data after the top-level value
	}
	d.buildStrings()
	return true
}

// buildStrings copies the kept strings into one allocation.
func (d *fastDecoder) buildStrings() {
	n := 0
	for _, s := range d.strs {
		n += s.end - s.start
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, s := range d.strs {
		sb.Write(d.b[s.start:s.end])
	}
	all, off := sb.String(), 0
	for _, s := range d.strs {
		l := s.end - s.start
		*s.dst = all[off : off+l]
		off += l
	}
}

func (d *fastDecoder) request(req *request) bool {
	var seen uint32
	return d.object(func(start, end int, plain bool) bool {
		n, ok := d.field(start, end, plain, requestNames)
		switch {
		case !ok:
			return false
		case n < 0:
			return d.skip(2)
		case !once(&seen, n):
			return false
		}
		switch n {
		case 0:
			return d.keep(&req.UID)
		case 1:
			return d.resource(&req.Resource)
		case 2:
			return d.keep(&req.SubResource)
		case 3:
			return d.keep(&req.Name)
		case 4:
			return d.keep(&req.Namespace)
		case 5:
			return d.keep(&req.Operation)
		case 6:
			return d.userInfo(req)
		case 7:
			return d.raw(&req.Object, &req.objKeys)
		case 8:
			return d.raw(&req.OldObject, &req.oldKeys)
		default:
			var v bool
			switch {
			case d.literal("true"):
				v = true
			case d.literal("false"):
			default:
				return false
			}
			req.DryRun = &v
			return true
		}
	})
}

func (d *fastDecoder) resource(r *gvr) bool {
	if d.peek() != '{' {
		return false
	}
	var seen uint32
	return d.object(func(start, end int, plain bool) bool {
		n, ok := d.field(start, end, plain, resourceNames)
		switch {
		case !ok:
			return false
		case n < 0:
			return d.skip(3)
		case !once(&seen, n):
			return false
		}
		switch n {
		case 0:
			return d.keep(&r.Group)
		case 1:
			return d.keep(&r.Version)
		default:
			return d.keep(&r.Resource)
		}
	})
}

func (d *fastDecoder) userInfo(req *request) bool {
	if d.peek() != '{' {
		return false
	}
	u := &req.UserInfo
	var seen uint32
	return d.object(func(start, end int, plain bool) bool {
		n, ok := d.field(start, end, plain, userNames)
		switch {
		case !ok:
			return false
		case n < 0:
			return d.skip(3)
		case !once(&seen, n):
			return false
		}
		switch n {
		case 0:
			return d.keep(&u.Username)
		case 1:
			return d.keep(&u.UID)
		case 2:
			return d.strings(&u.Groups)
		default:
			if d.peek() != '{' {
				return false
			}
			u.Extra = map[string][]string{}
			var key string
			return d.object(func(start, end int, plain bool) bool {
				if !plain {
					return false
				}
				key = string(d.b[start:end])
				if _, dup := u.Extra[key]; dup {
					return false
				}
				var vals []string
				if !d.strings(&vals) {
					return false
				}
				u.Extra[key] = vals
				return true
			})
		}
	})
}

// strings reads an array of plain strings; [] is an empty, non-nil slice
// as encoding/json makes it.
func (d *fastDecoder) strings(dst *[]string) bool {
	if d.peek() != '[' {
		return false
	}
	// Count first, so that the spans point into a slice that stays put.
	save, count := d.i, 0
	if !d.array(func() bool {
		count++
		return d.peek() == '"' && d.skip(4)
	}) {
		return false
	}
	d.i = save
	out := make([]string, count)
	k := 0
	if !d.array(func() bool {
		k++
		return d.keep(&out[k-1])
	}) {
		return false
	}
	*dst = out
	return true
}

// raw keeps a value's bytes (a sub-slice of the body, not a copy) and, for
// an object, its metadata keys as scanObject reads them.
func (d *fastDecoder) raw(dst *json.RawMessage, keys *objectKeys) bool {
	d.ws()
	start := d.i
	if d.peek() == '{' {
		odd := d.oddNumber
		d.oddNumber = false
		if !d.objectWithKeys(keys) {
			return false
		}
		keys.decodes = !d.oddNumber
		d.oddNumber = d.oddNumber || odd
	} else if d.skip(2) {
		// scanObject finds no keys outside an object.
		*keys = objectKeys{scanned: true}
	} else {
		return false
	}
	*dst = json.RawMessage(d.b[start:d.i])
	return true
}

// objectKeys are the metadata uid, resourceVersion and name of a raw
// object; scanned tells they were read on the fast path (else taintOf
// scans the raw object).
type objectKeys struct {
	keys    [3]string
	scanned bool
	// exact: the object is a JSON object, metadata and each key appear at
	// most once, plainly, and no key is the literal true: keys are what
	// unstructured's GetUID, GetResourceVersion and GetName return after
	// decodeObject. decodes: it has no number that could fail to decode
	// (decodeObject cannot fail on it). Both let a worker skip decoding
	// oldObject when no rule needs its labels.
	exact, decodes bool
}

var metadataNames = []string{"uid", "resourceVersion", "name"}

// objectWithKeys reads an object and the keys scanObject would find in it:
// the last metadata.uid, .resourceVersion and .name of string type (or the
// literal true, which scanObject reads as "true"). An escaped key or a
// string scanObject would decode or skip leaves the keys to scanObject.
func (d *fastDecoder) objectWithKeys(keys *objectKeys) bool {
	sure, exact := true, true
	var metadataSeen bool
	ok := d.object(func(start, end int, plain bool) bool {
		if !plain {
			sure = false
		}
		if string(d.b[start:end]) != "metadata" {
			return d.skip(3)
		}
		if metadataSeen {
			exact = false // decoding keeps the last, the scan merges
		}
		metadataSeen = true
		if d.peek() != '{' {
			return d.skip(3)
		}
		var seen uint32
		return d.object(func(start, end int, plain bool) bool {
			if !plain {
				sure = false
			}
			slot := -1
			for n, name := range metadataNames {
				if string(d.b[start:end]) == name {
					slot = n
				}
			}
			if slot >= 0 && !once(&seen, slot) {
				exact = false
			}
			switch {
			case slot < 0:
				return d.skip(4)
			case d.peek() == '"':
				s, e, plain, ok := d.str()
				if !ok {
					return false
				}
				if !plain || e-s > maxScanString {
					sure = false
				} else {
					// Spans are applied in order: the last one wins,
					// as in scanObject.
					d.strs = append(d.strs, strSpan{dst: &keys.keys[slot], start: s, end: e})
				}
				return true
			case d.literal("true"):
				exact = false // the scan reads "true", unstructured ""
				d.strs = append(d.strs, strSpan{dst: &keys.keys[slot], start: d.i - 4, end: d.i})
				return true
			default:
				return d.skip(4)
			}
		})
	})
	keys.scanned = ok && sure
	keys.exact = keys.scanned && exact
	return ok
}
