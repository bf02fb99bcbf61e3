package change

import (
	"strings"
	"testing"
)

func TestEscapeWhy_linesBoundedAndVisible(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "one line", in: "Raise replicas for the sale (INC-1234)", want: []string{"Raise replicas for the sale (INC-1234)"}},
		{name: "lines, blanks and spaces trimmed", in: "  first\r\n\n\tsecond  \n\n", want: []string{"first", "second"}},
		{name: "NUL and carriage return escaped", in: "a\x00b\rc", want: []string{`a\x00b\rc`}},
		{name: "bidi override escaped", in: "ok\u202egnp.exe", want: []string{`ok\u202egnp.exe`}},
		{name: "line separator escaped", in: "a\u2028b", want: []string{`a\u2028b`}},
		{name: "invalid UTF-8 replaced", in: "bad\xffend", want: []string{"bad\uFFFDend"}},
		{name: "leading quote kept", in: `"quoted" reason`, want: []string{`"quoted" reason`}},
		{name: "unicode kept", in: "Zoë: schaal op", want: []string{"Zoë: schaal op"}},
		{name: "nothing visible", in: " \n\t\n", want: nil},
		{name: "too many lines cut", in: strings.Repeat("l\n", MaxWhyLines+3),
			want: append(repeat("l", MaxWhyLines-1), "l"+whyCut)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EscapeWhy(tt.in)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") || len(got) != len(tt.want) {
				t.Fatalf("EscapeWhy(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscapeWhy_longTextCutAtRuneBoundary(t *testing.T) {
	got := EscapeWhy(strings.Repeat("é", MaxWhyBytes)) // 2 bytes each
	if len(got) != 1 {
		t.Fatalf("got %d lines, want 1", len(got))
	}
	line := got[0]
	if !strings.HasSuffix(line, whyCut) {
		t.Fatalf("a cut reason does not end with %q: ...%q", whyCut, line[len(line)-10:])
	}
	if body := strings.TrimSuffix(line, whyCut); len(body) > MaxWhyBytes || strings.ContainsRune(body, '\uFFFD') {
		t.Fatalf("cut body is %d bytes (max %d) or split a rune", len(body), MaxWhyBytes)
	}
	total := 0
	for _, l := range EscapeWhy(strings.Repeat(strings.Repeat("x", 300)+"\n", 10)) {
		total += len(strings.TrimSuffix(l, whyCut))
	}
	if total > MaxWhyBytes {
		t.Fatalf("%d bytes kept over lines, want at most %d", total, MaxWhyBytes)
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
