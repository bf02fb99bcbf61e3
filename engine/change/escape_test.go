package change

import (
	"strconv"
	"strings"
	"testing"
)

func TestEscape_oneLineAndReversible(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain name", in: "alice", want: "alice"},
		{name: "service account", in: "system:serviceaccount:ci:deployer", want: "system:serviceaccount:ci:deployer"},
		{name: "space and unicode", in: "Zoë van Dijk", want: "Zoë van Dijk"},
		{name: "newline", in: "alice\nReverser-User: root", want: `"alice\nReverser-User: root"`},
		{name: "carriage return", in: "a\rb", want: `"a\rb"`},
		{name: "NUL", in: "eve\x00", want: `"eve\x00"`},
		{name: "invalid UTF-8", in: "bad\xff\xfe", want: `"bad\xff\xfe"`},
		{name: "line separator", in: "a\u2028b", want: `"a\u2028b"`},
		{name: "leading quote", in: `"alice"`, want: `"\"alice\""`},
		{name: "tab", in: "a\tb", want: `"a\tb"`},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Escape(tt.in)
			if got != tt.want {
				t.Fatalf("Escape(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if strings.ContainsAny(got, "\n\r\x00") {
				t.Errorf("Escape(%q) = %q is not one clean line", tt.in, got)
			}
			if got != tt.in {
				back, err := strconv.Unquote(got)
				if err != nil || back != tt.in {
					t.Errorf("Unquote(%s) = %q, %v; want %q", got, back, err, tt.in)
				}
			}
		})
	}
}

func TestUser_Escaped_unknownAndGroups(t *testing.T) {
	tests := []struct {
		name       string
		user       User
		wantName   string
		wantGroups []string
	}{
		{name: "unknown", user: User{}, wantName: "unknown", wantGroups: []string{}},
		{name: "odd name and groups", user: User{Username: "x\ny", Groups: []string{"devs", "a,b", "c\x00"}},
			wantName: `"x\ny"`, wantGroups: []string{"devs", `"a,b"`, `"c\x00"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.user.Escaped(); got != tt.wantName {
				t.Errorf("Escaped() = %s, want %s", got, tt.wantName)
			}
			got := tt.user.EscapedGroups()
			if strings.Join(got, "|") != strings.Join(tt.wantGroups, "|") {
				t.Errorf("EscapedGroups() = %q, want %q", got, tt.wantGroups)
			}
		})
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"alice", "a\nb", "\x00", "\xff", `"q`, "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Escape(s)
		if strings.ContainsAny(got, "\n\r\x00") {
			t.Fatalf("Escape(%q) = %q holds a line break or NUL", s, got)
		}
		if got == s {
			return
		}
		back, err := strconv.Unquote(got)
		if err != nil || back != s {
			t.Fatalf("Escape(%q) = %s does not unquote back: %q, %v", s, got, back, err)
		}
	})
}
