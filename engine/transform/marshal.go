package transform

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var (
	// topLevelFirst and metadataFirst put the fields a reader looks for
	// first at the top, in the order of kubectl's own examples; every
	// other key follows in byte order, as sigs.k8s.io/yaml sorts them.
	topLevelFirst = []string{"apiVersion", "kind", "metadata"}
	metadataFirst = []string{"name", "namespace", "labels", "annotations"}
)

// Marshal renders obj as deterministic YAML: the same object always gives
// the same bytes. Top-level keys start with apiVersion, kind and metadata,
// metadata starts with name, namespace, labels and annotations, and every
// other mapping is sorted by key. Indentation is two spaces with list items
// at their parent's indentation (as kubectl prints), long strings are never
// folded, multi-line strings use literal blocks, and strings that a YAML 1.1
// reader would take for another type (`yes`, `on`, `1:20`) are quoted. The
// output ends with a newline and has no document marker.
//
// The bytes are those of the go.yaml.in/yaml/v3 encoder (marshalNode),
// which earlier versions used for every object, so files already in a
// repository do not change; a direct writer (emit.go) produces them for
// the values decoded JSON holds, at a tenth of the cost, and leaves the
// rare rest (invalid UTF-8, keys over 128 bytes...) to the encoder.
func Marshal(obj *unstructured.Unstructured) ([]byte, error) {
	if obj == nil || obj.Object == nil {
		return nil, errors.New("marshal: nil object")
	}
	if out, err := appendYAML(make([]byte, 0, 1024), obj.Object); err == nil {
		return out, nil
	}
	return marshalNode(obj)
}

// marshalNode is Marshal through a yaml.Node tree and the yaml.v3
// encoder: the reference the direct writer (emit.go) must match byte for
// byte, and the path for the objects that writer leaves to yaml.v3.
func marshalNode(obj *unstructured.Unstructured) ([]byte, error) {
	if obj == nil || obj.Object == nil {
		return nil, errors.New("marshal: nil object")
	}
	root, err := mappingNode(obj.Object, topLevelFirst, true)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", describe(obj), err)
	}
	var buf bytes.Buffer
	buf.Grow(1024)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("marshal %s: %w", describe(obj), err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal %s: %w", describe(obj), err)
	}
	return buf.Bytes(), nil
}

// mappingNode builds a mapping with the keys in first (those present) at
// the front and the rest sorted. top marks the object's root, whose
// metadata gets its own order.
func mappingNode(m map[string]interface{}, first []string, top bool) (*yaml.Node, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !contains(first, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	ordered := make([]string, 0, len(m))
	for _, k := range first {
		if _, ok := m[k]; ok {
			ordered = append(ordered, k)
		}
	}
	ordered = append(ordered, keys...)

	node := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: make([]*yaml.Node, 0, 2*len(ordered))}
	for _, k := range ordered {
		var (
			v   *yaml.Node
			err error
		)
		if sub, ok := m[k].(map[string]interface{}); ok && top && k == "metadata" {
			v, err = mappingNode(sub, metadataFirst, false)
		} else {
			v, err = valueNode(m[k])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		node.Content = append(node.Content, stringNode(k), v)
	}
	return node, nil
}

func valueNode(v interface{}) (*yaml.Node, error) {
	switch t := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	case string:
		return stringNode(t), nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	case int64:
		return intNode(strconv.FormatInt(t, 10)), nil
	case int:
		return intNode(strconv.FormatInt(int64(t), 10)), nil
	case int32:
		return intNode(strconv.FormatInt(int64(t), 10)), nil
	case uint:
		return intNode(strconv.FormatUint(uint64(t), 10)), nil
	case uint32:
		return intNode(strconv.FormatUint(uint64(t), 10)), nil
	case uint64:
		return intNode(strconv.FormatUint(t, 10)), nil
	case float64:
		return floatNode(t, 64), nil
	case float32:
		return floatNode(float64(t), 32), nil
	case map[string]interface{}:
		return mappingNode(t, nil, false)
	case []interface{}:
		node := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: make([]*yaml.Node, 0, len(t))}
		for i, e := range t {
			n, err := valueNode(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			node.Content = append(node.Content, n)
		}
		return node, nil
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}

func intNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: s}
}

// floatNode keeps a float recognisable as a float: 2.0 is written `2.0`,
// not `2`, which would read back as an integer.
func floatNode(f float64, bits int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: floatText(f, bits)}
}

// floatText is the text of a float: strconv's shortest form with ".0"
// added to whole numbers, or YAML's names for infinities and NaN.
func floatText(f float64, bits int) string {
	var s string
	switch {
	case math.IsInf(f, 1):
		s = ".inf"
	case math.IsInf(f, -1):
		s = "-.inf"
	case math.IsNaN(f):
		s = ".nan"
	default:
		s = strconv.FormatFloat(f, 'g', -1, bits)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
	}
	return s
}

// stringNode leaves quoting to the encoder, which quotes a string that a
// YAML 1.2 reader would resolve to another type, and forces double quotes
// for the YAML 1.1 booleans and sexagesimal numbers that it would not quote
// but older readers (yaml.v2, PyYAML) still resolve.
func stringNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if yaml11Bools[s] || (strings.Contains(s, ":") && base60Float.MatchString(s)) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true,
	"n": true, "N": true, "no": true, "No": true, "NO": true,
	"on": true, "On": true, "ON": true,
	"off": true, "Off": true, "OFF": true,
}

var base60Float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
