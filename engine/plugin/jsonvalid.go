package plugin

// validJSON reports whether data is one valid JSON value: the same answer
// as encoding/json.Valid (a differential fuzz test holds them equal),
// including its nesting limit, at several times its speed. Every output a
// module hands back is checked, and json.Valid's state machine, a function
// call per byte, was a tenth of a light sanitizer call.
func validJSON(data []byte) bool {
	var stackBuf [32]bool
	stack := stackBuf[:0] // true for an object, false for an array
	i := skipWS(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxNestingDepth {
				return false
			}
			isObject := c == '{'
			i = skipWS(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' or ']': empty
				i++
				break
			}
			stack = append(stack, isObject)
			if isObject {
				if i = memberKey(data, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			i = stringEnd(data, i)
		case c == 't':
			i = literal(data, i, "true")
		case c == 'f':
			i = literal(data, i, "false")
		case c == 'n':
			i = literal(data, i, "null")
		case c == '-' || (c >= '0' && c <= '9'):
			i = numberEnd(data, i)
		default:
			return false
		}
		if i < 0 {
			return false
		}
		// After a value: close containers until a comma starts the next one.
		for {
			i = skipWS(data, i)
			if len(stack) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			isObject := stack[len(stack)-1]
			if data[i] == ',' {
				i = skipWS(data, i+1)
				if isObject {
					if i = memberKey(data, i); i < 0 {
						return false
					}
				}
				break
			}
			if (isObject && data[i] == '}') || (!isObject && data[i] == ']') {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return false
		}
	}
}

// maxNestingDepth is encoding/json's limit.
const maxNestingDepth = 10000

// memberKey checks `"key" :` at i and returns the offset of the value that
// follows, or -1.
func memberKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = stringEnd(data, i); i < 0 {
		return -1
	}
	i = skipWS(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipWS(data, i+1)
}

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainString marks the bytes a string may hold without an escape.
var plainString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// stringEnd returns the offset after the string starting at i, or -1.
// Like encoding/json, it accepts any byte from 0x20 up, valid UTF-8 or not.
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		c := data[i]
		if plainString[c] {
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
	return -1
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func literal(data []byte, i int, word string) int {
	if len(data)-i < len(word) || string(data[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// numberEnd returns the offset after the number starting at i, or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}
