// Package policies ships the default Rego policies (package reverser) that
// every rule's policy is compiled together with. The .rego files next to this
// file are the source; their _test.rego companions run under
// `opa test policies/`. See docs/policies.md for the input and decision
// documents.
package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed *.rego
var files embed.FS

// testSuffix marks Rego test files, which are not part of the defaults.
const testSuffix = "_test.rego"

// Defaults returns the default policy modules, keyed by file name (e.g.
// "policies/record.rego"), without the test files.
func Defaults() (map[string]string, error) {
	return load(func(name string) bool { return !strings.HasSuffix(name, testSuffix) })
}

// Tests returns the Rego test modules (`*_test.rego`), keyed by file name.
func Tests() (map[string]string, error) {
	return load(func(name string) bool { return strings.HasSuffix(name, testSuffix) })
}

func load(keep func(name string) bool) (map[string]string, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("listing embedded policies: %w", err)
	}
	modules := make(map[string]string, len(entries))
	for _, e := range entries {
		if e.IsDir() || !keep(e.Name()) {
			continue
		}
		src, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading embedded policy %s: %w", e.Name(), err)
		}
		modules["policies/"+e.Name()] = string(src)
	}
	return modules, nil
}
