package sdk

import (
	"bytes"
	"errors"
)

// Settings calls fn for every member of the rule's settings object raw,
// with the decoded key and the span of its value in raw. Empty settings and
// JSON null have no members. fn returns an error to stop; Settings returns
// it prefixed with "settings: <key>".
//
// Reading settings this way instead of with encoding/json keeps about
// 0.5 MB out of the module; String and StringList decode common values.
func Settings(raw []byte, fn func(key string, value Span) error) error {
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || string(trimmed) == "null" {
		return nil
	}
	root, err := Root(raw)
	if err != nil {
		return wrapError("settings", err)
	}
	if root.Kind(raw) != '{' {
		return errors.New("settings: want a JSON object")
	}
	var inner error
	err = Members(raw, root, func(key []byte, v Span) bool {
		k, kerr := Unquote(key)
		if kerr != nil {
			inner = wrapError("settings", kerr)
			return false
		}
		if ferr := fn(k, v); ferr != nil {
			inner = wrapError("settings: "+k, ferr)
			return false
		}
		return true
	})
	if err != nil {
		return wrapError("settings", err)
	}
	return inner
}

// String decodes the JSON string at s.
func String(doc []byte, s Span) (string, error) {
	if s.Kind(doc) != '"' || s.End-s.Start < 2 {
		return "", errors.New("want a string")
	}
	return Unquote(doc[s.Start+1 : s.End-1])
}

// StringList decodes the JSON array of strings at s; null is an empty list.
func StringList(doc []byte, s Span) ([]string, error) {
	if s.Kind(doc) == 'n' {
		return nil, nil
	}
	if s.Kind(doc) != '[' {
		return nil, errors.New("want an array of strings")
	}
	var (
		out   []string
		inner error
	)
	err := Elements(doc, s, func(i int, v Span) bool {
		str, serr := String(doc, v)
		if serr != nil {
			inner = wrapError("element "+itoa(i), serr)
			return false
		}
		out = append(out, str)
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, inner
}

// ErrUnknownSetting is returned (wrapped) by plugins for a settings key they
// do not know, so a misspelt key fails loudly instead of being ignored.
var ErrUnknownSetting = errors.New("unknown setting")
