package change

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape renders s for a line of Git metadata (an author name, a trailer,
// a subject): a string of printable UTF-8 that does not start with a double
// quote is returned as it is; anything else (NUL, a newline or another
// control character, invalid UTF-8, a leading '"') is returned Go-quoted
// (strconv.Quote), so it stays one line, keeps every byte (strconv.Unquote
// gives the original back) and cannot be mistaken for a plain name, which
// never starts with '"'. Nothing is dropped: a change by an odd username is
// committed under its escaped name.
func Escape(s string) string {
	if plain(s) {
		return s
	}
	return strconv.Quote(s)
}

// plain reports whether s can go into a line of Git metadata as it is.
func plain(s string) bool {
	if strings.HasPrefix(s, `"`) {
		return false
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return false // invalid UTF-8
		}
		// unicode.IsPrint excludes control characters, line and
		// paragraph separators and other non-printing runes; a plain
		// space is allowed.
		if r != ' ' && !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// Escaped is the user's name as it may appear in a commit (author name,
// Reverser-User trailer, subject): UnknownUsername for the unknown user,
// else the username through Escape.
func (u User) Escaped() string {
	if u.IsUnknown() {
		return UnknownUsername
	}
	return Escape(u.Username)
}

// EscapedGroups returns the user's groups through Escape; a group that
// holds a comma is quoted too, so that a comma-separated trailer splits
// back into the same groups.
func (u User) EscapedGroups() []string {
	out := make([]string, 0, len(u.Groups))
	for _, g := range u.Groups {
		if strings.Contains(g, ",") && plain(g) {
			out = append(out, strconv.Quote(g))
			continue
		}
		out = append(out, Escape(g))
	}
	return out
}

// MaxWhyBytes and MaxWhyLines bound the reason a user gives for a change
// (EscapeWhy): an annotation may hold 256 KiB, a commit message should not.
const (
	MaxWhyBytes = 1024
	MaxWhyLines = 12
)

// whyCut ends a reason that EscapeWhy shortened.
const whyCut = " […]"

// EscapeWhy renders a user's reason for a change (an annotation's value,
// untrusted text) as lines for a commit message body: invalid UTF-8 becomes
// U+FFFD; a tab becomes a space; every other non-printing rune (NUL, a
// carriage return, bidirectional overrides, line separators) is written as
// its Go escape (\x00, \u202e), so nothing invisible reaches a reviewer;
// blank lines and surrounding spaces go; at most MaxWhyLines lines and
// MaxWhyBytes bytes are kept, a cut marked with "[…]". The caller indents
// or prefixes every line, so that no line of the reason can pass for one
// of the message's own (a trailer such as Reverser-User, or a "---"
// divider). It returns nil for a reason with no visible text.
func EscapeWhy(s string) []string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var out []string
	size := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(escapeLine(strings.ReplaceAll(line, "\t", " ")))
		if line == "" {
			continue
		}
		if len(out) == MaxWhyLines {
			out[len(out)-1] += whyCut
			return out
		}
		if size+len(line) > MaxWhyBytes {
			rest := strings.TrimSpace(truncateUTF8(line, MaxWhyBytes-size))
			if rest == "" && len(out) > 0 {
				out[len(out)-1] += whyCut
			} else {
				out = append(out, strings.TrimSpace(rest+whyCut))
			}
			return out
		}
		size += len(line)
		out = append(out, line)
	}
	return out
}

// escapeLine writes every non-printing rune of line as its Go escape; a
// plain space stays.
func escapeLine(line string) string {
	if plain(line) || strings.HasPrefix(line, `"`) && plain(line[1:]) {
		return line
	}
	var b strings.Builder
	for _, r := range line {
		if r == ' ' || unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r) // e.g. '\x00' or '\u202e'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// truncateUTF8 returns at most n bytes of s, cut at a rune boundary.
func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
