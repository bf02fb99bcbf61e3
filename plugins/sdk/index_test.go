package sdk

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// walk records every value reachable through Members and Elements from the
// root of doc, with its path and raw bytes.
func walk(doc []byte) (string, error) {
	var b strings.Builder
	var visit func(path string, s Span) error
	visit = func(path string, s Span) error {
		fmt.Fprintf(&b, "%s=%s\n", path, s.Bytes(doc))
		var inner error
		switch s.Kind(doc) {
		case '{':
			err := Members(doc, s, func(k []byte, v Span) bool {
				inner = visit(path+"."+string(k), v)
				return inner == nil
			})
			if err != nil {
				return err
			}
		case '[':
			err := Elements(doc, s, func(i int, v Span) bool {
				inner = visit(fmt.Sprintf("%s[%d]", path, i), v)
				return inner == nil
			})
			if err != nil {
				return err
			}
		}
		return inner
	}
	root, err := Root(doc)
	if err != nil {
		return "", err
	}
	return b.String(), visit("", root)
}

// walkIndexed walks doc as the object of a call envelope, so that the
// index built for the envelope serves it.
func walkIndexed(t testing.TB, doc []byte) (string, error) {
	in := []byte(`{"object":` + string(doc) + `,"settings":null}`)
	input, err := parseIndexed(in)
	defer dropIndex()
	if err != nil {
		return "", err
	}
	if current.base == nil {
		t.Fatal("parseIndexed left no index")
	}
	return walk(input.Object)
}

var indexDocs = []string{
	`{}`, `[]`, `{"a":1}`, ` { "a" : [ 1 , {"b":"}"} , [] ] , "c\"d" : null } `,
	`{"a":{"b":{"c":[true,false,-1.5e3,"x\\"]}}}`, `[[[]],[{}],{"k":[1]}]`,
	`{"esc\u0041":"v\\","e":"\"","long":"` + strings.Repeat("abcdefgh", 9) + `\"` + strings.Repeat("z", 13) + `\\"}`,
}

func TestIndex_walkMatchesScanning(t *testing.T) {
	deployment, err := os.ReadFile("../../test/testdata/wasm/deployment.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append(indexDocs, string(deployment)) {
		want, err := walk([]byte(doc))
		if err != nil {
			t.Fatalf("scanning walk of %s: %v", doc, err)
		}
		got, err := walkIndexed(t, []byte(doc))
		if err != nil {
			t.Fatalf("indexed walk of %s: %v", doc, err)
		}
		if got != want {
			t.Fatalf("indexed walk differs for %.80s:\n%s\nwant\n%s", doc, got, want)
		}
	}
}

func TestIndex_rejectsMalformed(t *testing.T) {
	for _, doc := range []string{
		``, `{`, `}`, `{"a":1`, `{"a" 1}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":1,}`, `[1,]`, `[1 2]`,
		`{"a":]`, `[}`, `{"a":1}}`, `"x`, `{"a":"x}`, `{} {}`, `{"a":1,,"b":2}`, `{:1}`, `[,1]`, `{"a"}`,
	} {
		if _, err := buildIndex([]byte(doc), nil); err == nil {
			t.Errorf("buildIndex(%q) succeeded", doc)
		}
	}
}

func TestIndex_droppedAfterTheCall(t *testing.T) {
	in := []byte(`{"object":{"a":1},"settings":null}`)
	if _, err := RunSanitize(in, func(o, _ []byte) ([]byte, error) { return o, nil }); err != nil {
		t.Fatal(err)
	}
	if current.base != nil {
		t.Fatal("the index outlived its call")
	}
	if _, err := ParseInput(in); err != nil || current.base != nil {
		t.Fatalf("ParseInput: %v, index left: %v", err, current.base != nil)
	}
}

// FuzzIndex: indexing never panics; for valid JSON it succeeds and the
// indexed walk equals the scanning one.
func FuzzIndex(f *testing.F) {
	for _, d := range indexDocs {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, ierr := buildIndex(doc, nil)
		var obj map[string]json.RawMessage
		if json.Unmarshal(doc, &obj) != nil || obj == nil {
			return
		}
		if ierr != nil {
			t.Fatalf("buildIndex rejects valid %q: %v", doc, ierr)
		}
		want, err := walk(doc)
		if err != nil {
			t.Fatalf("scanning walk: %v", err)
		}
		got, err := walkIndexed(t, doc)
		if err != nil || got != want {
			t.Fatalf("indexed walk of %q = %q, %v; want %q", doc, got, err, want)
		}
	})
}

func BenchmarkIndex_deployment(b *testing.B) {
	doc, err := os.ReadFile("../../test/testdata/wasm/deployment.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	var nodes []node
	for b.Loop() {
		if nodes, err = buildIndex(doc, nodes[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
