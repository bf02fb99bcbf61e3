package policy

import (
	"encoding/json"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// lazyDoc is the input document of a change with one object as an
// ast.LazyObject: a nested value is converted when a policy reads it, so a
// CREATE that the default policies decide on its user, resource and
// operation costs next to nothing. It is used only where it behaves as the
// eager conversion does:
//
//   - an update keeps the eager conversion: comparing object with
//     oldObject forces both, and the eager conversion converts what they
//     share once (pairTerms);
//   - a lazy object caches what it converted, so evaluations of one
//     Document take turns (mu);
//   - `with input.x as y` changes a copy of the input, and a lazy object's
//     copy is the object itself, so the change would stay in the Document:
//     a policy that uses `with` (Policy.usesWith) is given the eager
//     conversion;
//   - ast.LazyObject panics on a value it cannot convert: only objects of
//     the types ast.InterfaceToValue converts without error are held
//     lazily (convertible).
type lazyDoc struct {
	mu    sync.Mutex
	parts docParts
	value ast.Value
	eager ast.Value
	err   error
}

// input returns the document for a policy, converting it whole for a
// policy that uses `with`. The caller holds mu.
func (d *lazyDoc) input(usesWith bool) (ast.Value, error) {
	if !usesWith {
		return d.value, nil
	}
	if d.eager == nil && d.err == nil {
		d.eager, d.err = d.parts.eager()
	}
	return d.eager, d.err
}

// convertible reports whether x can be held lazily: ast.InterfaceToValue
// converts it without a JSON round trip and without error (the types a
// JSON or Kubernetes unstructured decoder produces), and ast.JSON, which
// hands a lazy object's Go values over as they are (json.marshal), gives
// what it gives for the converted value. Not a float64: json.marshal
// writes OPA's form of the number (1.2345675e+06), encoding/json its own
// (1234567.5). A nil map is convertible.
func convertible(x any) bool {
	switch v := x.(type) {
	case nil, bool, string, int, int64, uint64, []string, map[string]string:
		return true
	case json.Number:
		_, err := ast.NumberChecked(string(v))
		return err == nil
	case []any:
		for _, e := range v {
			if !convertible(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range v {
			if !convertible(e) {
				return false
			}
		}
		return true
	}
	return false
}

// usesWith reports whether a module uses the `with` keyword (or does not
// parse, which Compile has ruled out).
func usesWith(modules map[string]string) bool {
	for name, src := range modules {
		m, err := ast.ParseModule(name, src)
		if err != nil {
			return true
		}
		found := false
		ast.WalkWiths(m, func(*ast.With) bool {
			found = true
			return true
		})
		if found {
			return true
		}
	}
	return false
}
