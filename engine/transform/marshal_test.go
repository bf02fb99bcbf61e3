package transform

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestMarshal_scalars_quotedForYAML11Readers(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("segment/", 20)
	tests := []struct {
		name  string
		value interface{}
		want  string
	}{
		{name: "plain string", value: "nginx:1.27", want: "v: nginx:1.27\n"},
		{name: "yes", value: "yes", want: "v: \"yes\"\n"},
		{name: "on", value: "on", want: "v: \"on\"\n"},
		{name: "capital N", value: "N", want: "v: \"N\"\n"},
		{name: "true as string", value: "true", want: "v: \"true\"\n"},
		{name: "number as string", value: "3", want: "v: \"3\"\n"},
		{name: "float as string", value: "1.5", want: "v: \"1.5\"\n"},
		{name: "octal-looking string", value: "0755", want: "v: \"0755\"\n"},
		{name: "sexagesimal", value: "1:30", want: "v: \"1:30\"\n"},
		{name: "null as string", value: "null", want: "v: \"null\"\n"},
		{name: "tilde", value: "~", want: "v: \"~\"\n"},
		{name: "empty string", value: "", want: "v: \"\"\n"},
		{name: "date", value: "2025-03-02", want: "v: \"2025-03-02\"\n"},
		{name: "leading star", value: "*.example.com", want: "v: '*.example.com'\n"},
		{name: "multi-line", value: "a\nb\n", want: "v: |\n  a\n  b\n"},
		{name: "long string not folded", value: long, want: "v: " + long + "\n"},
		{name: "int64", value: int64(8080), want: "v: 8080\n"},
		{name: "whole float", value: float64(2), want: "v: 2.0\n"},
		{name: "float", value: 12.5, want: "v: 12.5\n"},
		{name: "bool", value: true, want: "v: true\n"},
		{name: "null", value: nil, want: "v: null\n"},
		{name: "empty map", value: map[string]interface{}{}, want: "v: {}\n"},
		{name: "empty list", value: []interface{}{}, want: "v: []\n"},
		{
			name:  "list of maps at parent indentation",
			value: []interface{}{map[string]interface{}{"b": int64(1), "a": "x"}},
			want:  "v:\n- a: x\n  b: 1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustMarshal(t, &unstructured.Unstructured{Object: map[string]interface{}{"v": tt.value}})
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			// sigs.k8s.io/yaml reads YAML 1.1 (yaml.v2): the value must
			// come back unchanged.
			var back map[string]interface{}
			if err := yaml.Unmarshal(got, &back); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if want := normalizeJSONNumbers(tt.value); !reflect.DeepEqual(back["v"], want) {
				t.Errorf("read back %#v, want %#v", back["v"], want)
			}
		})
	}
}

// normalizeJSONNumbers turns values into what encoding/json decodes them to.
func normalizeJSONNumbers(v interface{}) interface{} {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case map[string]interface{}:
		m := map[string]interface{}{}
		for k, e := range t {
			m[k] = normalizeJSONNumbers(e)
		}
		return m
	case []interface{}:
		s := []interface{}{}
		for _, e := range t {
			s = append(s, normalizeJSONNumbers(e))
		}
		return s
	default:
		return v
	}
}

func TestMarshal_keyOrder_topLevelAndMetadataFirst(t *testing.T) {
	obj := fromJSON(t, `{"data":{"z":"1","a":"2"},"kind":"ConfigMap","apiVersion":"v1",
		"metadata":{"finalizers":["f"],"annotations":{"b":"x","a":"y"},"labels":{"l":"v"},"namespace":"ns","name":"n","generateName":"g"},
		"binaryData":{"k":"AA=="}}`)
	want := `apiVersion: v1
kind: ConfigMap
metadata:
  name: "n"
  namespace: ns
  labels:
    l: v
  annotations:
    a: "y"
    b: x
  finalizers:
  - f
  generateName: g
binaryData:
  k: AA==
data:
  a: "2"
  z: "1"
`
	if got := string(mustMarshal(t, obj)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMarshal_deterministic_fixtures(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			first := mustMarshal(t, loadObject(t, name+".json"))
			for i := 0; i < 20; i++ {
				// A fresh decode gives fresh maps with a fresh iteration order.
				if again := mustMarshal(t, loadObject(t, name+".json")); !bytes.Equal(first, again) {
					t.Fatalf("run %d differs:\n%s\n---\n%s", i, first, again)
				}
			}
			if !bytes.HasSuffix(first, []byte("\n")) || bytes.HasPrefix(first, []byte("---")) {
				t.Errorf("want no document marker and a final newline, got %q...", first[:20])
			}
		})
	}
}

func TestMarshal_roundTrip_fixtures(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			clean := mustSanitize(t, loadObject(t, name+".json"), Options{})
			out := mustMarshal(t, clean)
			json, err := yaml.YAMLToJSON(out)
			if err != nil {
				t.Fatalf("YAMLToJSON: %v", err)
			}
			back := &unstructured.Unstructured{}
			if err := back.UnmarshalJSON(json); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(back.Object, clean.Object) {
				t.Errorf("round trip changed the object\nYAML:\n%s", out)
			}
		})
	}
}

func TestMarshal_errors_badInput(t *testing.T) {
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want string
	}{
		{name: "nil", obj: nil, want: "nil object"},
		{name: "nil map", obj: &unstructured.Unstructured{}, want: "nil object"},
		{
			name: "unsupported type",
			obj: &unstructured.Unstructured{Object: map[string]interface{}{
				"kind": "X", "spec": map[string]interface{}{"list": []interface{}{"a", make(chan int)}},
			}},
			want: "spec: list: [1]: unsupported value of type chan int",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Marshal(tt.obj)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got (%q, %v), want error containing %q", out, err, tt.want)
			}
		})
	}
}
