package plugin

import (
	"errors"
	"fmt"
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
