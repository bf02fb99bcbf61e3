package plugin

import (
	"encoding/json"
	"strings"
	"testing"
)

var jsonCases = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, ` {"a" : [1, 2.5, -0.1e+3, true, false, null, "x\"y\\u00e9"]} `,
	`{"a":}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{a:1}`, `{"a":1}}`, `[[]`, `]`, `"`, `"\x"`,
	`"\u12"`, `"\u12G4"`, "\"a\x01b\"", "\"\xff\"", `01`, `-`, `-0`, `1.`, `1.e3`, `1e`, `1e+`, `.5`,
	`+1`, `tru`, `truex`, `nul`, `{"a":1} x`, `1 2`, `[{"a":[{"b":{}}]}]`, "\t[\r\n]\n",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat("}", 10001),
	strings.Repeat("[", 9999) + "[]" + strings.Repeat("]", 9999),
	strings.Repeat("[", 10000) + "[]" + strings.Repeat("]", 10000),
}

func TestValidJSON_agreesWithEncodingJSON(t *testing.T) {
	for _, c := range append(jsonCases, string(deployment(t))) {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}

func BenchmarkValidJSON_deployment(b *testing.B) {
	obj := deployment(b)
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		if !validJSON(obj) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkEncodingJSONValid_deployment(b *testing.B) {
	obj := deployment(b)
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		if !json.Valid(obj) {
			b.Fatal("invalid")
		}
	}
}
