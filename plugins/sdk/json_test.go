package sdk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustRoot(t *testing.T, doc []byte) Span {
	t.Helper()
	r, err := Root(doc)
	if err != nil {
		t.Fatalf("Root(%s): %v", doc, err)
	}
	return r
}

func TestLookup_paths(t *testing.T) {
	doc := []byte(` {"a": {"b" : [1, {"x":"}"}], "c\u0064": "v\"q", "e": null}, "z": 1.5e3 } `)
	cases := []struct {
		name string
		path []string
		want string
		ok   bool
	}{
		{name: "nested array", path: []string{"a", "b"}, want: `[1, {"x":"}"}]`, ok: true},
		{name: "escaped key", path: []string{"a", "cd"}, want: `"v\"q"`, ok: true},
		{name: "null", path: []string{"a", "e"}, want: `null`, ok: true},
		{name: "number", path: []string{"z"}, want: `1.5e3`, ok: true},
		{name: "missing", path: []string{"a", "nope"}},
		{name: "through non-object", path: []string{"z", "y"}},
	}
	root := mustRoot(t, doc)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ok, err := Lookup(doc, root, tc.path...)
			if err != nil || ok != tc.ok {
				t.Fatalf("Lookup = %v, %v; want ok=%v", ok, err, tc.ok)
			}
			if ok && string(s.Bytes(doc)) != tc.want {
				t.Fatalf("got %s, want %s", s.Bytes(doc), tc.want)
			}
		})
	}
}

func TestRoot_malformed(t *testing.T) {
	for _, doc := range []string{``, `{`, `{"a":`, `{"a":"x}`, `[1,2`, `{} x`, `"\`} {
		t.Run(doc, func(t *testing.T) {
			if _, err := Root([]byte(doc)); err == nil {
				t.Fatalf("Root(%q) succeeded", doc)
			}
		})
	}
}

func TestMembers_malformedObject(t *testing.T) {
	for _, doc := range []string{`{"a" 1}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":1,}`} {
		t.Run(doc, func(t *testing.T) {
			err := Members([]byte(doc), Span{0, len(doc)}, func([]byte, Span) bool { return true })
			if err == nil {
				t.Fatalf("Members(%q) succeeded", doc)
			}
		})
	}
}

func TestElements_visitsInOrder(t *testing.T) {
	doc := []byte(`[ "a", {"b":[]}, 3 ,[] ]`)
	var got []string
	if err := Elements(doc, mustRoot(t, doc), func(i int, v Span) bool {
		got = append(got, string(v.Bytes(doc)))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != `"a"|{"b":[]}|3|[]` {
		t.Fatalf("got %q", got)
	}
	empty := []byte(`[]`)
	if err := Elements(empty, mustRoot(t, empty), func(int, Span) bool { t.Fatal("called"); return true }); err != nil {
		t.Fatal(err)
	}
}

func TestUnquote_escapes(t *testing.T) {
	cases := []struct{ raw, want string }{
		{`plain`, "plain"},
		{`a\"b\\c\/d\n\t`, "a\"b\\c/d\n\t"},
		{`\u00e9\u002f`, "é/"},
		{`\ud83d\ude00`, "😀"},
		{`\ud83d`, "\uFFFD"},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := Unquote([]byte(tc.raw))
			if err != nil || got != tc.want {
				t.Fatalf("Unquote = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{`\`, `\x`, `\u12`} {
		if _, err := Unquote([]byte(bad)); err == nil {
			t.Fatalf("Unquote(%q) succeeded", bad)
		}
	}
}

func TestAppendQuoted_roundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"uote\\", "ctl\x01\n\r\t", "ünï😀", "bad\xffutf8"} {
		t.Run(s, func(t *testing.T) {
			q := AppendQuoted(nil, s)
			var back string
			if err := json.Unmarshal(q, &back); err != nil {
				t.Fatalf("%s is not a JSON string: %v", q, err)
			}
			if want := strings.ToValidUTF8(s, "\uFFFD"); back != want {
				t.Fatalf("round trip %q -> %s -> %q", s, q, back)
			}
		})
	}
}

func TestEditor_Bytes_appliesEdits(t *testing.T) {
	doc := []byte(`{"metadata":{"labels":{"a":"1","b":"2","c":"3"},"name":"x"},"v":"old"}`)
	cases := []struct {
		name string
		drop []string
		want string
	}{
		{name: "first", drop: []string{"a"}, want: `{"metadata":{"labels":{"b":"2","c":"3"},"name":"x"},"v":"new"}`},
		{name: "middle", drop: []string{"b"}, want: `{"metadata":{"labels":{"a":"1","c":"3"},"name":"x"},"v":"new"}`},
		{name: "adjacent", drop: []string{"a", "b"}, want: `{"metadata":{"labels":{"c":"3"},"name":"x"},"v":"new"}`},
		{name: "all", drop: []string{"a", "b", "c"}, want: `{"metadata":{"labels":{},"name":"x"},"v":"new"}`},
		{name: "none", want: `{"metadata":{"labels":{"a":"1","b":"2","c":"3"},"name":"x"},"v":"new"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := mustRoot(t, doc)
			ed := NewEditor(doc)
			labels, _, _ := Lookup(doc, root, "metadata", "labels")
			n, err := ed.DeleteMembers(labels, func(k []byte) bool {
				for _, d := range tc.drop {
					if string(k) == d {
						return true
					}
				}
				return false
			})
			if err != nil || n != len(tc.drop) {
				t.Fatalf("DeleteMembers = %d, %v", n, err)
			}
			v, _, _ := Lookup(doc, root, "v")
			ed.ReplaceString(v, "new")
			out, err := ed.Bytes()
			if err != nil || string(out) != tc.want {
				t.Fatalf("Bytes = %s, %v\nwant %s", out, err, tc.want)
			}
		})
	}
}

func TestEditor_Bytes_rejectsOverlap(t *testing.T) {
	doc := []byte(`{"a":{"b":1}}`)
	ed := NewEditor(doc)
	a, _, _ := Lookup(doc, mustRoot(t, doc), "a")
	b, _, _ := Lookup(doc, a, "b")
	ed.Replace(a, []byte(`1`))
	ed.Replace(b, []byte(`2`))
	if _, err := ed.Bytes(); err == nil {
		t.Fatal("overlapping edits were applied")
	}
}

func TestRunSanitize_envelope(t *testing.T) {
	in := []byte(`{"object":{"kind":"Pod"},"settings":{"k":1},"context":{"operation":"CREATE"}}`)
	cases := []struct {
		name    string
		in      []byte
		fn      SanitizeFunc
		want    string
		wantErr string
	}{
		{name: "passes parts", in: in, fn: func(o, s []byte) ([]byte, error) {
			return []byte(string(o) + string(s) + string(CallContext())), nil
		}, want: `{"kind":"Pod"}{"k":1}{"operation":"CREATE"}`},
		{name: "panic becomes error", in: in, fn: func(o, s []byte) ([]byte, error) { panic("boom") }, wantErr: "plugin panic: boom"},
		{name: "error", in: in, fn: func(o, s []byte) ([]byte, error) { return nil, errors.New("no") }, wantErr: "no"},
		{name: "empty output", in: in, fn: func(o, s []byte) ([]byte, error) { return nil, nil }, wantErr: "no output"},
		{name: "no object", in: []byte(`{"settings":null}`), fn: func(o, s []byte) ([]byte, error) { return o, nil }, wantErr: "no object"},
		{name: "not an object", in: []byte(`[1]`), fn: func(o, s []byte) ([]byte, error) { return o, nil }, wantErr: "not a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := RunSanitize(tc.in, tc.fn)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("RunSanitize = %s, %v; want %s", out, err, tc.want)
			}
		})
	}
	if CallContext() != nil {
		t.Fatal("CallContext outlived the call")
	}
}

func TestRunLayout_emptyPathIsError(t *testing.T) {
	in := []byte(`{"object":{}}`)
	if _, err := RunLayout(in, func(o, s []byte) (string, error) { return "", nil }); err == nil {
		t.Fatal("empty path accepted")
	}
	p, err := RunLayout(in, func(o, s []byte) (string, error) { return "a/b.yaml", nil })
	if err != nil || p != "a/b.yaml" {
		t.Fatalf("RunLayout = %q, %v", p, err)
	}
}
