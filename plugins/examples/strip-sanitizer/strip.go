// Command strip-sanitizer is an example gitops-reverser sanitizer plugin.
//
// Settings:
//
//	{"dropLabels": ["..."], "dropAnnotations": ["..."], "redactEnvPatterns": ["(?i)password|token"]}
//
// It removes the named labels and annotations from metadata and replaces the
// value of every container env var whose name matches a pattern with
// "REDACTED" (pods, pod templates, and CronJob job templates). It edits the
// object's bytes in place and never decodes the whole object.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o strip-sanitizer.wasm .
package main

import (
	"bytes"
	"errors"
	"regexp"

	"github.com/gitops-reverser/gitops-reverser/plugins/sdk"
)

// settings are the rule's settings for this plugin.
type settings struct {
	DropLabels        []string
	DropAnnotations   []string
	RedactEnvPatterns []string

	redact []*regexp.Regexp
	// matched remembers, per env var name, whether a pattern matched: the
	// same few names come back in every update of a workload, and a regexp
	// match costs microseconds in WebAssembly.
	matched map[string]bool
}

// maxMatched bounds the memo of matched names.
const maxMatched = 4096

// redactedValue replaces matching env values.
var redactedValue = []byte(`"REDACTED"`)

// The settings of a rule rarely change, so the parsed form (with compiled
// patterns) is kept for as long as the same bytes come in.
var (
	cachedRaw      []byte
	cachedSettings *settings
)

func loadSettings(raw []byte) (*settings, error) {
	if cachedSettings != nil && bytes.Equal(raw, cachedRaw) {
		return cachedSettings, nil
	}
	s := &settings{matched: map[string]bool{}}
	err := sdk.Settings(raw, func(key string, v sdk.Span) error {
		var err error
		switch key {
		case "dropLabels":
			s.DropLabels, err = sdk.StringList(raw, v)
		case "dropAnnotations":
			s.DropAnnotations, err = sdk.StringList(raw, v)
		case "redactEnvPatterns":
			s.RedactEnvPatterns, err = sdk.StringList(raw, v)
		default:
			err = sdk.ErrUnknownSetting
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, p := range s.RedactEnvPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, errors.New("settings: redactEnvPatterns: " + err.Error())
		}
		s.redact = append(s.redact, re)
	}
	cachedRaw, cachedSettings = bytes.Clone(raw), s
	return s, nil
}

// strip is the sanitizer. Each level of the object is walked once: in WASM
// every pass over the bytes costs, so lookups are batched per object.
func strip(object, rawSettings []byte) ([]byte, error) {
	s, err := loadSettings(rawSettings)
	if err != nil {
		return nil, err
	}
	root := sdk.Whole(object)
	if root.Kind(object) != '{' {
		return nil, errors.New("object is not a JSON object")
	}
	var metadata, spec sdk.Span
	err = sdk.Members(object, root, func(key []byte, v sdk.Span) bool {
		switch string(key) {
		case "metadata":
			metadata = v
		case "spec":
			spec = v
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	ed := sdk.NewEditor(object)
	if metadata.Kind(object) == '{' && (len(s.DropLabels) > 0 || len(s.DropAnnotations) > 0) {
		if err := dropMetadata(object, metadata, ed, s); err != nil {
			return nil, err
		}
	}
	if spec.Kind(object) == '{' && len(s.redact) > 0 {
		if err := redactSpec(object, spec, ed, s); err != nil {
			return nil, err
		}
	}
	return ed.Bytes()
}

func dropMetadata(doc []byte, metadata sdk.Span, ed *sdk.Editor, s *settings) error {
	var labels, annotations sdk.Span
	err := sdk.Members(doc, metadata, func(key []byte, v sdk.Span) bool {
		switch string(key) {
		case "labels":
			labels = v
		case "annotations":
			annotations = v
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		span sdk.Span
		drop []string
	}{{labels, s.DropLabels}, {annotations, s.DropAnnotations}} {
		if len(f.drop) == 0 || f.span.Kind(doc) != '{' {
			continue
		}
		// The lists are short: comparing raw keys allocates nothing.
		_, err := ed.DeleteMembers(f.span, func(key []byte) bool {
			for _, d := range f.drop {
				if sdk.KeyEquals(key, d) {
					return true
				}
			}
			return false
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// redactSpec handles a Pod's spec directly, a pod template
// (spec.template.spec) and a CronJob's spec.jobTemplate.spec.template.spec.
func redactSpec(doc []byte, spec sdk.Span, ed *sdk.Editor, s *settings) error {
	var inner error
	err := sdk.Members(doc, spec, func(key []byte, v sdk.Span) bool {
		switch string(key) {
		case "containers", "initContainers", "ephemeralContainers":
			inner = redactContainers(doc, v, ed, s)
		case "template":
			inner = redactAt(doc, v, []string{"spec"}, ed, s)
		case "jobTemplate":
			inner = redactAt(doc, v, []string{"spec", "template", "spec"}, ed, s)
		}
		return inner == nil
	})
	if err != nil {
		return err
	}
	return inner
}

func redactAt(doc []byte, from sdk.Span, path []string, ed *sdk.Editor, s *settings) error {
	podSpec, ok, err := sdk.Lookup(doc, from, path...)
	if err != nil || !ok || podSpec.Kind(doc) != '{' {
		return err
	}
	var inner error
	err = sdk.Members(doc, podSpec, func(key []byte, v sdk.Span) bool {
		switch string(key) {
		case "containers", "initContainers", "ephemeralContainers":
			inner = redactContainers(doc, v, ed, s)
		}
		return inner == nil
	})
	if err != nil {
		return err
	}
	return inner
}

func redactContainers(doc []byte, list sdk.Span, ed *sdk.Editor, s *settings) error {
	if list.Kind(doc) != '[' {
		return nil
	}
	var inner error
	err := sdk.Elements(doc, list, func(_ int, c sdk.Span) bool {
		if c.Kind(doc) == '{' {
			inner = redactContainer(doc, c, ed, s)
		}
		return inner == nil
	})
	if err != nil {
		return err
	}
	return inner
}

func redactContainer(doc []byte, c sdk.Span, ed *sdk.Editor, s *settings) error {
	env, ok, err := sdk.Lookup(doc, c, "env")
	if err != nil || !ok || env.Kind(doc) != '[' {
		return err
	}
	var inner error
	err = sdk.Elements(doc, env, func(_ int, v sdk.Span) bool {
		if v.Kind(doc) != '{' {
			return true
		}
		var name string
		var value sdk.Span
		hasValue := false
		inner = sdk.Members(doc, v, func(key []byte, val sdk.Span) bool {
			switch string(key) {
			case "name":
				name, _ = sdk.StringValue(doc, val)
			case "value":
				value, hasValue = val, true
			}
			return true
		})
		if inner != nil {
			return false
		}
		if hasValue && s.matches(name) {
			ed.Replace(value, redactedValue)
		}
		return true
	})
	if err != nil {
		return err
	}
	return inner
}

func (s *settings) matches(name string) bool {
	if m, ok := s.matched[name]; ok {
		return m
	}
	m := false
	for _, re := range s.redact {
		if re.MatchString(name) {
			m = true
			break
		}
	}
	if len(s.matched) >= maxMatched {
		clear(s.matched)
	}
	s.matched[name] = m
	return m
}

// main is empty: a reactor module is driven through its exports.
func main() {}
