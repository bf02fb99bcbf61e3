package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Reason says why a plugin call or load failed, in a form fit for a
// condition reason.
type Reason string

const (
	// ReasonDigestMismatch means the module's bytes do not hash to the pinned sha256.
	ReasonDigestMismatch Reason = "DigestMismatch"
	// ReasonInvalidModule means the bytes are not a valid WebAssembly module,
	// or the module imports something the host does not provide.
	ReasonInvalidModule Reason = "InvalidModule"
	// ReasonMissingExport means a required export is missing or has the wrong signature.
	ReasonMissingExport Reason = "MissingExport"
	// ReasonABIVersion means reverser_abi_version returned an unsupported version.
	ReasonABIVersion Reason = "ABIVersion"
	// ReasonTimeout means the call did not finish before its deadline.
	ReasonTimeout Reason = "Timeout"
	// ReasonTrap means the module trapped or exited (a crash).
	ReasonTrap Reason = "Trap"
	// ReasonOutOfMemory means the module ran out of its capped memory.
	ReasonOutOfMemory Reason = "OutOfMemory"
	// ReasonBadOutput means the output broke the ABI: out of bounds, not a
	// JSON object (sanitize) or not a usable path string (layout).
	ReasonBadOutput Reason = "BadOutput"
	// ReasonOutputTooLarge means the output exceeded Options.MaxOutputBytes.
	ReasonOutputTooLarge Reason = "OutputTooLarge"
	// ReasonPluginFailed means the plugin itself reported an error for this object.
	ReasonPluginFailed Reason = "PluginFailed"
	// ReasonClosed means the module was released or the host closed.
	ReasonClosed Reason = "Closed"
)

// PluginError is the error of every failed load or call. Module is the
// module's sha256 digest.
type PluginError struct {
	Module string
	Reason Reason
	Err    error
}

// Error implements error.
func (e *PluginError) Error() string {
	mod := e.Module
	if len(mod) > 12 {
		mod = mod[:12]
	}
	return fmt.Sprintf("plugin %s: %s: %v", mod, e.Reason, e.Err)
}

// Unwrap returns the underlying error.
func (e *PluginError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a *PluginError in err's chain, or "" when
// there is none.
func ReasonOf(err error) Reason {
	var pe *PluginError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return ""
}

func newError(module string, reason Reason, format string, args ...any) *PluginError {
	return &PluginError{Module: module, Reason: reason, Err: fmt.Errorf(format, args...)}
}

const (
	// maxGuestMessage bounds the guest's own error text kept in a
	// PluginFailed error, in bytes.
	maxGuestMessage = 200
	// minScrubbedValue is the shortest string value of the input object
	// that is removed from a guest's error text.
	minScrubbedValue = 4
	// scrubbedMarker replaces an object value in a guest's error text.
	scrubbedMarker = "***"
)

// reduceGuestMessage turns the error text a module reported for one call
// into what may reach a rule's condition and the log: its first line, with
// every occurrence of a string value (at least minScrubbedValue bytes) of
// the given JSON objects replaced by scrubbedMarker, cut to
// maxGuestMessage bytes. A plugin author keeps a useful message; no value
// of the object the module was given reaches a condition, whatever the
// module echoes. objects are the inputs of the call (raw and as the module
// saw them); one that is not valid JSON contributes nothing.
func reduceGuestMessage(msg []byte, objects ...[]byte) string {
	if i := bytes.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	text := strings.ToValidUTF8(string(msg), "\uFFFD")
	values := map[string]struct{}{}
	for _, object := range objects {
		collectStringValues(object, values)
	}
	if len(values) > 0 && text != "" {
		// Longest first, so a value containing another is removed whole.
		sorted := make([]string, 0, len(values))
		for v := range values {
			sorted = append(sorted, v)
		}
		sort.Slice(sorted, func(i, j int) bool {
			if len(sorted[i]) != len(sorted[j]) {
				return len(sorted[i]) > len(sorted[j])
			}
			return sorted[i] < sorted[j]
		})
		for _, v := range sorted {
			text = strings.ReplaceAll(text, v, scrubbedMarker)
		}
	}
	if len(text) > maxGuestMessage {
		cut := maxGuestMessage
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	return text
}

// collectStringValues adds every string leaf of the JSON document data
// that is at least minScrubbedValue bytes long to values, both as decoded
// and as JSON-escaped (the form a module echoing its raw input reports).
func collectStringValues(data []byte, values map[string]struct{}) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			if len(v) < minScrubbedValue {
				return
			}
			values[v] = struct{}{}
			for _, escapeHTML := range []bool{true, false} {
				var buf bytes.Buffer
				enc := json.NewEncoder(&buf)
				enc.SetEscapeHTML(escapeHTML)
				if enc.Encode(v) == nil {
					// Encode writes "value"\n.
					values[string(bytes.TrimSuffix(bytes.TrimSpace(buf.Bytes()), []byte(`"`))[1:])] = struct{}{}
				}
			}
		}
	}
	walk(doc)
}

// ReduceMessage reduces text a module produced (an error it reported, a
// path the host refused) for a condition or a log line as a PluginFailed
// error's text is reduced: its first line, at most 200 bytes, every string
// value (at least 4 bytes) of the JSON objects replaced by "***".
func ReduceMessage(text string, objects ...[]byte) string {
	return reduceGuestMessage([]byte(text), objects...)
}
