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
	"errors"
	"strings"

	"github.com/gitops-reverser/gitops-reverser/plugins/sdk"
)

// settings are the rule's settings for this plugin.
type settings struct {
	Label    string
	Fallback string
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
	err := sdk.Settings(raw, func(key string, v sdk.Span) error {
		var err error
		switch key {
		case "label":
			s.Label, err = sdk.String(raw, v)
		case "fallback":
			s.Fallback, err = sdk.String(raw, v)
		default:
			err = sdk.ErrUnknownSetting
		}
		return err
	})
	if err != nil {
		return settings{}, err
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
		return "", errors.New("object has no kind: " + errOrMissing(err).Error())
	}
	name, err := stringAt(object, root, "metadata", "name")
	if err != nil || name == "" {
		return "", errors.New("object has no metadata.name: " + errOrMissing(err).Error())
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
