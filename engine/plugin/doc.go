// Package plugin runs user-supplied WebAssembly plugins for the transform
// stage.
//
// A Fetcher reads a module's bytes from where a rule says they are (a
// ConfigMap or Secret, gzip-compressed and chunked past the 1 MiB object
// limit, an HTTPS URL or an OCI artifact) and verifies them against the
// pinned sha256. The Host receives those bytes with their digest (Host.Load),
// and then, per change, an object as JSON with the rule's settings and the
// change's context (operator, user, resource). It hands on the sanitized
// object as JSON (Module.Sanitize) or the object's repository path
// (Module.Layout). The path is returned as the plugin wrote it: the caller
// cleans it and rejects absolute, escaping or .git paths.
// A Secret handed to either is redacted first (values replaced by markers,
// keys kept), whatever the caller passed, and a digest mismatch shows no
// digest of a ConfigMap's or Secret's content.
//
// Modules follow ABI v1 (plugins/README.md). They run in wazero, compiled once
// per digest through a compilation cache, in a small pool of warm instances
// with capped memory and a deadline on every call, which a check compiled
// into every loop enforces (interrupt.go: the module is rewritten before
// compilation). They get no filesystem,
// no network, a fake clock and a deterministic random source unless Options
// grant the real ones. An instance that trapped, timed out, ran out of memory
// or produced bad output is closed, never reused; every such failure is a
// *PluginError with a Reason that a condition can show.
package plugin
