// Package transform is the pipeline stage between a confirmed change and the
// batcher. It receives an object as the API server stored it (an
// *unstructured.Unstructured from a watch event, a list or an admission
// request) and hands on what the Git writer needs: a cleaned deep copy
// (Sanitize), its deterministic YAML bytes (Marshal) and the repository path
// the file goes to (DefaultPath, or a WASM layout's choice checked by
// CleanPath).
//
// Sanitize removes what the API server and controllers set, so that a file
// in Git shows only what a user chose and stays byte-identical while nothing
// that matters changes. Secret values never leave Sanitize: a Secret is
// either redacted or skipped. Fingerprint and Equivalent compare two objects
// after the same normalisation, so the confirm stage can tell whether the
// object an admission request carried is the one that was persisted.
//
// The package is pure: no cluster, no I/O, safe for concurrent use.
// docs/sanitizer.md lists every rule and the reason for it.
package transform
