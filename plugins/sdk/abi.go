package sdk

import (
	"errors"
)

// ABIVersion is the version of the plugin ABI this SDK implements; the
// module's reverser_abi_version export returns it.
const ABIVersion = 1

// ErrorFlag is set in the length half of a packed result when the bytes it
// points to are an error message instead of output.
const ErrorFlag = 1 << 31

// maxErrorMessage caps the error text handed back to the host.
const maxErrorMessage = 4096

// SanitizeFunc edits one object. It receives the object and the rule's
// settings as raw JSON and returns the edited object as JSON. It may return
// object itself when nothing changes.
type SanitizeFunc func(object, settings []byte) ([]byte, error)

// LayoutFunc chooses the repository path of one object, relative to the
// target's base path.
type LayoutFunc func(object, settings []byte) (string, error)

// Input is one call envelope split into its raw parts.
type Input struct {
	// Object is the Kubernetes object.
	Object []byte
	// Settings are the rule's settings for the module (null when unset).
	Settings []byte
	// Context describes the change: operation, user and resource.
	Context []byte
}

// currentContext holds the context of the call being served; a WASM module
// runs one call at a time.
var currentContext []byte

// CallContext returns the raw JSON context ({"operation", "user",
// "resource"}) of the call being served. It is only valid during a call.
func CallContext() []byte { return currentContext }

// ParseInput splits the call envelope {"object", "settings", "context"}
// without decoding the object.
func ParseInput(in []byte) (Input, error) {
	defer dropIndex()
	return parseIndexed(in)
}

// parseIndexed splits the envelope and leaves its structural index in
// place for the call (see index.go); the caller drops it.
func parseIndexed(in []byte) (Input, error) {
	var res Input
	if err := indexDocument(in); err != nil {
		return res, wrapError("reading call input", err)
	}
	root := Whole(in)
	if root.Kind(in) != '{' {
		return res, errors.New("reading call input: not a JSON object")
	}
	err := Members(in, root, func(key []byte, v Span) bool {
		switch string(key) {
		case "object":
			res.Object = v.Bytes(in)
		case "settings":
			res.Settings = v.Bytes(in)
		case "context":
			res.Context = v.Bytes(in)
		}
		return true
	})
	if err != nil {
		return res, wrapError("reading call input", err)
	}
	if res.Object == nil {
		return res, errors.New("reading call input: no object")
	}
	return res, nil
}

// RunSanitize runs fn on the call envelope in and returns its output. A panic
// in fn becomes an error, so a bug in a plugin is reported, not fatal.
func RunSanitize(in []byte, fn SanitizeFunc) (out []byte, err error) {
	input, err := parseIndexed(in)
	defer dropIndex()
	if err != nil {
		return nil, err
	}
	defer recoverInto(&err)
	currentContext = input.Context
	defer func() { currentContext = nil }()
	out, err = fn(input.Object, input.Settings)
	if err == nil && len(out) == 0 {
		err = errors.New("sanitizer returned no output")
	}
	return out, err
}

// RunLayout runs fn on the call envelope in and returns the path it chose.
func RunLayout(in []byte, fn LayoutFunc) (path string, err error) {
	input, err := parseIndexed(in)
	defer dropIndex()
	if err != nil {
		return "", err
	}
	defer recoverInto(&err)
	currentContext = input.Context
	defer func() { currentContext = nil }()
	path, err = fn(input.Object, input.Settings)
	if err == nil && path == "" {
		err = errors.New("layout returned an empty path")
	}
	return path, err
}

func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = errors.New("plugin panic: " + panicText(r))
	}
}

// panicText describes a recovered panic value without fmt.
func panicText(r any) string {
	switch v := r.(type) {
	case error:
		return v.Error()
	case string:
		return v
	case interface{ String() string }:
		return v.String()
	default:
		return "a value that is neither an error nor a string"
	}
}

// errorMessage returns the bounded error text handed to the host.
func errorMessage(err error) []byte {
	msg := err.Error()
	if msg == "" {
		msg = "plugin error"
	}
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	return []byte(msg)
}
