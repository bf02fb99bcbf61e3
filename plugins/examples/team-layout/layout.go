// Command team-layout is an example gitops-reverser layout plugin.
//
// Settings: {"label": "team", "fallback": "unowned"}.
//
// It places each object at
// teams/<label value or fallback>/<namespace>/<kind lowercase>/<name>.yaml;
// cluster-scoped objects use "_cluster" as their namespace.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o team-layout.wasm .
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gitops-reverser/gitops-reverser/plugins/sdk"
)

// settings are the rule's settings for this plugin.
type settings struct {
	Label    string `json:"label"`
	Fallback string `json:"fallback"`
}

var (
	cachedRaw      []byte
	cachedSettings settings
	cachedOK       bool
)

func loadSettings(raw []byte) (settings, error) {
	if cachedOK && bytes.Equal(raw, cachedRaw) {
		return cachedSettings, nil
	}
	s := settings{Label: "team", Fallback: "unowned"}
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return settings{}, fmt.Errorf("settings: %w", err)
		}
	}
	if s.Fallback == "" {
		return settings{}, errors.New("settings: fallback must not be empty")
	}
	cachedRaw, cachedSettings, cachedOK = bytes.Clone(raw), s, true
	return s, nil
}

// teamPath is the layout function.
func teamPath(object, rawSettings []byte) (string, error) {
	s, err := loadSettings(rawSettings)
	if err != nil {
		return "", err
	}
	root, err := sdk.Root(object)
	if err != nil {
		return "", err
	}
	kind, err := stringAt(object, root, "kind")
	if err != nil || kind == "" {
		return "", fmt.Errorf("object has no kind: %w", errOrMissing(err))
	}
	name, err := stringAt(object, root, "metadata", "name")
	if err != nil || name == "" {
		return "", fmt.Errorf("object has no metadata.name: %w", errOrMissing(err))
	}
	namespace, err := stringAt(object, root, "metadata", "namespace")
	if err != nil {
		return "", err
	}
	if namespace == "" {
		namespace = "_cluster"
	}
	team := s.Fallback
	if s.Label != "" {
		if v, err := stringAt(object, root, "metadata", "labels", s.Label); err != nil {
			return "", err
		} else if v != "" {
			team = v
		}
	}
	return "teams/" + team + "/" + namespace + "/" + strings.ToLower(kind) + "/" + name + ".yaml", nil
}

var errMissing = errors.New("missing")

func errOrMissing(err error) error {
	if err != nil {
		return err
	}
	return errMissing
}

// stringAt returns the string at path, or "" when it is absent or not a string.
func stringAt(doc []byte, root sdk.Span, path ...string) (string, error) {
	v, ok, err := sdk.Lookup(doc, root, path...)
	if err != nil || !ok {
		return "", err
	}
	s, _ := sdk.StringValue(doc, v)
	return s, nil
}

// main is empty: a reactor module is driven through its exports.
func main() {}
