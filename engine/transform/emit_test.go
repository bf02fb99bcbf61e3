package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// sameAsYAMLv3 fails t unless the direct writer gives marshalNode's bytes
// for obj. It reports whether the direct writer took obj (false: it left
// obj to yaml.v3, which Marshal then calls). Marshal must equal
// marshalNode either way, errors included.
func sameAsYAMLv3(t testing.TB, obj map[string]interface{}) bool {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	want, wantErr := marshalNode(u)
	got, err := Marshal(u)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("Marshal error %v, yaml.v3 error %v", err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal differs from yaml.v3\ngot:\n%s\nwant:\n%s\ngot  %q\nwant %q", got, want, got, want)
	}
	direct, err := appendYAML(nil, obj)
	if err != nil {
		if !errors.Is(err, errSlowPath) {
			t.Fatalf("direct writer: %v", err)
		}
		return false
	}
	if !bytes.Equal(direct, want) {
		t.Fatalf("direct writer differs from yaml.v3\ngot:\n%s\nwant:\n%s\ngot  %q\nwant %q", direct, want, direct, want)
	}
	return true
}

// nastyScalars are strings at the edges of yaml.v3's quoting rules. slow
// marks those the direct writer leaves to yaml.v3 as a value.
var nastyScalars = []struct {
	s    string
	slow bool
}{
	{s: ""}, {s: " "}, {s: "  "}, {s: "a"}, {s: "nginx:1.27"}, {s: "a b"}, {s: " a"}, {s: "a "},
	// YAML 1.1 and 1.2 booleans and nulls.
	{s: "y"}, {s: "Y"}, {s: "yes"}, {s: "Yes"}, {s: "YES"}, {s: "yES"}, {s: "n"}, {s: "N"}, {s: "no"}, {s: "No"},
	{s: "NO"}, {s: "on"}, {s: "On"}, {s: "ON"}, {s: "oN"}, {s: "off"}, {s: "Off"}, {s: "OFF"}, {s: "true"},
	{s: "True"}, {s: "TRUE"}, {s: "tRUE"}, {s: "false"}, {s: "False"}, {s: "FALSE"}, {s: "null"}, {s: "Null"},
	{s: "NULL"}, {s: "nULL"}, {s: "~"}, {s: "~a"}, {s: "<<"}, {s: "<"}, {s: "<<<"}, {s: "t"}, {s: "f"}, {s: "o"},
	// Numbers and number-like strings.
	{s: "0"}, {s: "1"}, {s: "-1"}, {s: "+1"}, {s: "007"}, {s: "0755"}, {s: "08"}, {s: "0x1F"}, {s: "0X1f"},
	{s: "0o17"}, {s: "0o8"}, {s: "-0o17"}, {s: "0b101"}, {s: "-0b101"}, {s: "0b2"}, {s: "1_000"}, {s: "_1"},
	{s: "1__0"}, {s: "1.5"}, {s: "1."}, {s: ".5"}, {s: "."}, {s: ".."}, {s: "..."}, {s: "...a"}, {s: "-.5"},
	{s: "+.5"}, {s: "1e3"}, {s: "1E3"}, {s: "1e+3"}, {s: "1e"}, {s: "e3"}, {s: "1.5e-3"}, {s: ".inf"},
	{s: ".Inf"}, {s: ".INF"}, {s: "-.inf"}, {s: "+.inf"}, {s: ".nan"}, {s: ".NaN"}, {s: ".NAN"}, {s: "inf"},
	{s: "Inf"}, {s: "+Inf"}, {s: "-Inf"}, {s: "NaN"}, {s: "nan"}, {s: "infinity"}, {s: "0x1p-2"},
	{s: "18446744073709551615"}, {s: "18446744073709551616"}, {s: "-9223372036854775808"},
	{s: "99999999999999999999999"}, {s: "1.2.3"}, {s: "10.0.0.1"}, {s: "1_0.5"}, {s: "+"}, {s: "-"},
	{s: "--"}, {s: "---"}, {s: "---a"}, {s: "- a"}, {s: "-a"}, {s: "-\ta"},
	// Sexagesimal and times.
	{s: "1:30"}, {s: "1:30:00"}, {s: "190:20:30.15"}, {s: "-1:30"}, {s: "1:60"}, {s: "12:30:45.5"},
	{s: "1:3a"}, {s: "2025-03-02"}, {s: "2025-3-2"}, {s: "2025-03-02T10:00:00Z"}, {s: "2025-03-02t10:00:00Z"},
	{s: "2025-03-02 10:00:00"}, {s: "2025-03-02T10:00:00+01:00"}, {s: "2025-13-02"}, {s: "20250-03-02"},
	{s: "2025-"}, {s: "2001-12-14 21:59:43.10 -5"},
	// Indicators.
	{s: "*.example.com"}, {s: "&a"}, {s: "!tag"}, {s: "|"}, {s: ">"}, {s: "'q'"}, {s: "\"q\""}, {s: "%x"},
	{s: "@x"}, {s: "`x"}, {s: "#x"}, {s: "a #b"}, {s: "a#b"}, {s: "a\t#b"}, {s: "a: b"}, {s: "a:b"}, {s: "a:"},
	{s: ":a"}, {s: ": a"}, {s: ":"}, {s: "?"}, {s: "? a"}, {s: "?a"}, {s: "a?"}, {s: "[a]"}, {s: "{a: 1}"},
	{s: "a,b"}, {s: "a[0]"}, {s: "a{b}"}, {s: ",a"}, {s: "{\"a\":1}"}, {s: "it's"}, {s: "'"}, {s: "''"},
	{s: "a'b' c"}, {s: "a\"b"}, {s: "a\\b"}, {s: "\\"}, {s: "$(VAR)"}, {s: "${VAR}"}, {s: "=a"}, {s: "a=b"},
	// Names, labels and images (analyze's shortcut).
	{s: "a-"}, {s: "a.b"}, {s: "..a"}, {s: ".a"}, {s: "/a"}, {s: "_a"}, {s: "a/b-c_d.e"}, {s: "1-2"},
	{s: "1.2.3-rc.1"}, {s: "v1.2"}, {s: "1e3-x"}, {s: "0x1f/x"}, {s: "app.kubernetes.io/name"},
	// Whitespace, control characters, unicode.
	{s: "\t"}, {s: "a\tb"}, {s: "\ta"}, {s: "a\t"}, {s: "\x00"}, {s: "a\x00b"}, {s: "\x07\x08\x0b\x0c\x1b"},
	{s: "a\rb"}, {s: "\x7f"}, {s: "é"}, {s: "日本語"}, {s: "naïve café"}, {s: "\u00a0"}, {s: "a\u00a0b"},
	{s: "\u0085"}, {s: "a\u0085b"}, {s: "😀"}, {s: "a😀b"}, {s: "\ufffe"}, {s: "\uffff"}, {s: "\ue000"},
	{s: "\ud7ff"}, {s: "a\ufeffb"}, {s: "\u0080"}, {s: "\u009f"},
	{s: "\ufeffa", slow: true}, {s: "\u2028", slow: true}, {s: "a\u2029b", slow: true},
	{s: "a\u2028\nb", slow: true}, {s: "\xff", slow: true}, {s: "a\xc3", slow: true},
	// Multi-line strings: literal blocks and their exceptions.
	{s: "\n"}, {s: "\n\n"}, {s: "a\n"}, {s: "a\nb"}, {s: "a\nb\n"}, {s: "a\n\n"}, {s: "a\n\n\n"},
	{s: "\na"}, {s: "\n\na\n"}, {s: " a\nb"}, {s: "a\n b\n"}, {s: "a \nb"}, {s: "a\nb "}, {s: "a\n\tb"},
	{s: "a\tb\nc"}, {s: "a\r\nb"}, {s: "a\n\x00"}, {s: "a\n😀\n"}, {s: "#!/bin/sh\necho hi\n"},
	{s: "key: value\nlist:\n- a\n"}, {s: "- a\n- b\n"}, {s: "---\na: 1\n"}, {s: "a\n---\nb\n"},
	{s: "a\n...\n"}, {s: "é\nü"}, {s: "a\u0085\nb"}, {s: "\"a\"\n'b'\n"}, {s: "a\n  \nb"}, {s: "\n "},
	{s: " "}, {s: "a\n\n b\n"},
	// Long lines are never folded.
	{s: strings.Repeat("word ", 40)}, {s: strings.Repeat("x", 300)}, {s: strings.Repeat("a b\n", 50)},
	{s: strings.Repeat("'quoted' ", 30)}, {s: "\"" + strings.Repeat("x ", 100) + "\\"},
}

func TestAppendYAML_nastyScalars_matchYAMLv3(t *testing.T) {
	for _, tt := range nastyScalars {
		t.Run(tt.s, func(t *testing.T) {
			s := tt.s
			value := map[string]interface{}{"v": s}
			if direct := sameAsYAMLv3(t, value); direct == tt.slow {
				t.Errorf("direct writer took it: %v, want %v", direct, !tt.slow)
			}
			// As a key: simple keys never hold line breaks and are at most
			// 128 bytes, else yaml.v3 writes "? key"; the direct writer
			// leaves those to it.
			keySlow := tt.slow || strings.ContainsAny(s, "\n\r\u0085") || len(s) > 128
			if direct := sameAsYAMLv3(t, map[string]interface{}{s: "v"}); direct == keySlow {
				t.Errorf("direct writer took it as a key: %v, want %v", direct, !keySlow)
			}
			// In every context a scalar can stand in.
			sameAsYAMLv3(t, map[string]interface{}{
				"apiVersion": s, "kind": "K",
				"metadata": map[string]interface{}{"name": s, "labels": map[string]interface{}{"l": s}},
				"list":     []interface{}{s, []interface{}{s, s}, map[string]interface{}{"a": s, "b": []interface{}{s}}},
				"deep":     map[string]interface{}{"x": map[string]interface{}{"y": []interface{}{map[string]interface{}{"z": s}}}},
			})
			if !tt.slow {
				assertScalarRoundTrip(t, s)
			}
		})
	}
}

// assertScalarRoundTrip reads Marshal's output back with yaml.v3 and
// expects s in every place it was written.
func assertScalarRoundTrip(t *testing.T, s string) {
	t.Helper()
	obj := map[string]interface{}{
		"v": s, "l": []interface{}{s, map[string]interface{}{"k": s}}, "m": map[string]interface{}{"n": s},
	}
	out := mustMarshal(t, &unstructured.Unstructured{Object: obj})
	var back struct {
		V string
		L []interface{}
		M map[string]string
	}
	if err := yamlv3.Unmarshal(out, &back); err != nil {
		t.Fatalf("read back %q: %v", out, err)
	}
	if back.V != s || len(back.L) != 2 || back.L[0] != s || back.M["n"] != s {
		t.Errorf("read back %#v from %q, want %q everywhere", back, out, s)
	}
	if m, ok := back.L[1].(map[string]interface{}); !ok || m["k"] != s {
		t.Errorf("read back %#v from %q, want %q", back.L[1], out, s)
	}
}

func TestAppendYAML_values_matchYAMLv3(t *testing.T) {
	tests := []struct {
		name string
		obj  map[string]interface{}
		slow bool
	}{
		{name: "empty object", obj: map[string]interface{}{}},
		{name: "empty metadata", obj: map[string]interface{}{"metadata": map[string]interface{}{}, "kind": "K"}},
		{name: "metadata not a map", obj: map[string]interface{}{"metadata": "x", "spec": map[string]interface{}{"metadata": map[string]interface{}{"z": 1, "name": "n"}}}},
		{name: "nulls and bools", obj: map[string]interface{}{"a": nil, "b": true, "c": false, "l": []interface{}{nil, true}}},
		{name: "integers", obj: map[string]interface{}{"a": int64(-9223372036854775808), "b": 1, "c": int32(-5), "d": uint(7), "e": uint32(8), "f": uint64(18446744073709551615)}},
		{name: "floats", obj: map[string]interface{}{"a": 2.0, "b": -0.0, "c": 1e21, "d": 1e-7, "e": 5e-324, "f": float32(0.1), "g": 1.7976931348623157e308, "h": -12.5}},
		{name: "special floats", obj: map[string]interface{}{"a": posInf(), "b": -posInf(), "c": nan()}},
		{name: "empty collections", obj: map[string]interface{}{"m": map[string]interface{}{}, "l": []interface{}{}, "ll": []interface{}{[]interface{}{}, map[string]interface{}{}}}},
		{name: "nil collections", obj: map[string]interface{}{"m": map[string]interface{}(nil), "l": []interface{}(nil), "s": []interface{}{map[string]interface{}(nil), []interface{}(nil)}}},
		{name: "nested sequences", obj: map[string]interface{}{"l": []interface{}{[]interface{}{[]interface{}{"x", "y"}, "z"}, []interface{}{map[string]interface{}{"a": "b", "c": []interface{}{"d"}}}}}},
		{name: "literal in nested sequences", obj: map[string]interface{}{"l": []interface{}{[]interface{}{"a\nb", []interface{}{"c\n"}}, map[string]interface{}{"k": []interface{}{"x\n\n"}}}}},
		{name: "key order", obj: map[string]interface{}{"z": 1, "B": 2, "a": 3, "_": 4, "0": 5, "kind": "K", "apiVersion": "v1", "metadata": map[string]interface{}{"uid": "u", "annotations": map[string]interface{}{}, "name": "n", "namespace": "ns", "labels": nil}}},
		{name: "long key", obj: map[string]interface{}{strings.Repeat("k", 129): "v"}, slow: true},
		{name: "key of 128 bytes", obj: map[string]interface{}{strings.Repeat("k", 128): "v"}},
		{name: "multi-line key", obj: map[string]interface{}{"a\nb": "v"}, slow: true},
		{name: "json.Number", obj: map[string]interface{}{"a": []interface{}{map[string]interface{}{"n": jsonNumber("1")}}}, slow: true},
		{name: "typed slice", obj: map[string]interface{}{"a": []string{"x"}}, slow: true},
		{name: "deep slow value", obj: map[string]interface{}{"a": map[string]interface{}{"b": []interface{}{"ok", "\xff"}}}, slow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if direct := sameAsYAMLv3(t, tt.obj); direct == tt.slow {
				t.Errorf("direct writer took it: %v, want %v", direct, !tt.slow)
			}
		})
	}
}

// TestAppendYAML_repoTestdata_matchYAMLv3 renders every JSON and YAML
// object under engine/ and test/ testdata (raw and sanitized) both ways.
func TestAppendYAML_repoTestdata_matchYAMLv3(t *testing.T) {
	var files []string
	for _, root := range []string{"../../engine", "../../test"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			ext := filepath.Ext(path)
			if !d.IsDir() && strings.Contains(filepath.ToSlash(path), "/testdata/") && (ext == ".json" || ext == ".yaml" || ext == ".yml") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	if len(files) < 20 {
		t.Fatalf("found %d testdata files, want the repository's (at least 20)", len(files))
	}
	objects := 0
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
			for {
				var obj map[string]interface{}
				if err := dec.Decode(&obj); err != nil {
					if errors.Is(err, io.EOF) {
						break
					}
					// Some testdata is deliberately malformed (bad
					// manifests for error paths): what came before the
					// bad document was checked, the rest is not an object.
					t.Logf("stops at a document that is not a YAML or JSON object: %v", err)
					break
				}
				if obj == nil {
					continue
				}
				// Re-decode as the pipeline does: int64 and float64 numbers.
				js, err := json.Marshal(obj)
				if err != nil {
					t.Fatalf("encode: %v", err)
				}
				u := &unstructured.Unstructured{}
				if err := utiljson.Unmarshal(js, &u.Object); err != nil {
					t.Fatalf("decode: %v", err)
				}
				objects++
				if !sameAsYAMLv3(t, u.Object) {
					t.Errorf("direct writer left %s to yaml.v3", path)
				}
				if clean, err := Sanitize(u, Options{}); err == nil {
					sameAsYAMLv3(t, clean.Object)
				}
				walkMaps(u.Object, func(m map[string]interface{}) { sameAsYAMLv3(t, m) })
			}
		})
	}
	if objects < 20 {
		t.Errorf("rendered %d objects, want at least 20", objects)
	}
}

// walkMaps calls fn for every mapping nested in v.
func walkMaps(v interface{}, fn func(map[string]interface{})) {
	switch t := v.(type) {
	case map[string]interface{}:
		for _, e := range t {
			if m, ok := e.(map[string]interface{}); ok {
				fn(m)
			}
			walkMaps(e, fn)
		}
	case []interface{}:
		for _, e := range t {
			if m, ok := e.(map[string]interface{}); ok {
				fn(m)
			}
			walkMaps(e, fn)
		}
	}
}

func FuzzMarshal_matchesYAMLv3(f *testing.F) {
	for _, tt := range nastyScalars {
		f.Add(tt.s, "k")
		f.Add("v", tt.s)
	}
	f.Add("a\nb", "c: d")
	f.Fuzz(func(t *testing.T, value, key string) {
		obj := map[string]interface{}{
			"apiVersion": "v1", "kind": value,
			"metadata": map[string]interface{}{"name": value, key: value, "labels": map[string]interface{}{key: value}},
			key:        value,
			"list":     []interface{}{value, map[string]interface{}{key: value, "z": []interface{}{value}}, []interface{}{value, []interface{}{key}}},
			"deep":     map[string]interface{}{"x": map[string]interface{}{key: []interface{}{map[string]interface{}{"y": value}}}},
		}
		if sameAsYAMLv3(t, obj) {
			out, err := appendYAML(nil, map[string]interface{}{"v": value, key + "x": []interface{}{value}})
			if err != nil {
				return
			}
			var back map[string]interface{}
			if err := yamlv3.Unmarshal(out, &back); err != nil {
				t.Fatalf("read back %q: %v", out, err)
			}
			if back["v"] != value {
				t.Errorf("read back %#v from %q, want %q", back["v"], out, value)
			}
			if l, ok := back[key+"x"].([]interface{}); !ok || len(l) != 1 || l[0] != value {
				t.Errorf("read back %#v from %q, want [%q]", back[key+"x"], out, value)
			}
		}
	})
}

func posInf() float64 { return math.Inf(1) }

func nan() float64 { return math.NaN() }

func jsonNumber(s string) json.Number { return json.Number(s) }

// TestAppendYAML_randomTrees_matchYAMLv3 renders random nestings of
// mappings, sequences and scalars (fixed seed, so a failure repeats).
func TestAppendYAML_randomTrees_matchYAMLv3(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 2026))
	var scalars []interface{}
	for _, tt := range nastyScalars {
		if !tt.slow {
			scalars = append(scalars, tt.s)
		}
	}
	scalars = append(scalars, nil, true, false, int64(0), int64(-42), 2.5, 3.0, map[string]interface{}{}, []interface{}{})
	keys := []string{"a", "b", "metadata", "name", "kind", "apiVersion", "labels", "spec", "", "1", "yes", "a b", "x: y", "-", "é", "'", "~"}
	var tree func(depth int) interface{}
	tree = func(depth int) interface{} {
		switch n := rng.IntN(10); {
		case depth > 4 || n < 4:
			return scalars[rng.IntN(len(scalars))]
		case n < 7:
			m := map[string]interface{}{}
			for i := rng.IntN(5); i >= 0; i-- {
				m[keys[rng.IntN(len(keys))]] = tree(depth + 1)
			}
			return m
		default:
			s := []interface{}{}
			for i := rng.IntN(4); i >= 0; i-- {
				s = append(s, tree(depth+1))
			}
			return s
		}
	}
	const trees = 1000
	direct := 0
	for i := 0; i < trees; i++ {
		obj := map[string]interface{}{}
		for j := rng.IntN(6); j >= 0; j-- {
			obj[keys[rng.IntN(len(keys))]] = tree(0)
		}
		if sameAsYAMLv3(t, obj) {
			direct++
		}
	}
	if direct != trees {
		t.Errorf("direct writer took %d of %d trees, want all", direct, trees)
	}
}
