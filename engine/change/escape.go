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
