package sdk

import "strconv"

// The SDK builds its messages with strconv, not fmt: fmt brings reflection
// and adds about 0.7 MB to every module built with the SDK (measured with
// Go 1.26, GOOS=wasip1), and module size is load time and, for modules
// uploaded as ConfigMaps, whether they fit at all.

// wrappedError is a message in front of the error that caused it.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg + ": " + e.err.Error() }

func (e *wrappedError) Unwrap() error { return e.err }

// wrapError returns an error reading "msg: err" that unwraps to err.
func wrapError(msg string, err error) error { return &wrappedError{msg: msg, err: err} }

func itoa(i int) string { return strconv.Itoa(i) }

// quoteByte quotes c as Go's %q does for a byte: '}' or '\x00'.
func quoteByte(c byte) string { return strconv.QuoteRune(rune(c)) }
