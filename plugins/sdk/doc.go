// Package sdk helps write gitops-reverser plugins in Go (GOOS=wasip1
// GOARCH=wasm, -buildmode=c-shared).
//
// A plugin receives one call envelope {"object", "settings", "context"} as
// JSON and hands back either the sanitized object (sanitize) or a repository
// path (layout); see plugins/README.md for the ABI. Importing this package
// provides the module exports reverser_abi_version and alloc; the plugin's
// main package exports sanitize and/or layout with //go:wasmexport and calls
// HandleSanitize or HandleLayout.
//
// Decoding a whole Kubernetes object into map[string]any inside WASM costs
// hundreds of microseconds, so the package also offers a small span-based
// JSON reader (Root, Lookup, Members, Elements, StringValue) and an Editor
// that rewrites a few values and copies everything else byte for byte.
package sdk
