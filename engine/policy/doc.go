// Package policy is the Rego stage of the pipeline: it decides whether a
// change that a rule selected is recorded in Git.
//
// It receives an Input (the admission request's shape: operation, userInfo,
// object, oldObject, resource, kind, ...; for a change seen only by the watch,
// the same shape with user "unknown") and hands on a Decision: record or not,
// the reasons, and labels for the commit message.
//
// A Secret in the input is redacted before any policy sees it (values
// replaced by markers, keys kept), and an evaluation error is an *EvalError
// whose text names the module, line, rule and kind of failure but no value:
// whoever may write a rule may not read the Secrets its policy runs on.
//
// A Policy is the default modules (policies/ of this repository) compiled
// together with a rule's own modules in package reverser, prepared once per
// revision and safe for concurrent evaluation. A Registry compiles each
// revision (sha256 of the sources) once and shares it between rules.
//
// The decision document a policy defines (see docs/policies.md):
//
//	data.reverser.record   boolean; undefined means true
//	data.reverser.reasons  set or array of strings; undefined means none
//	data.reverser.labels   object of strings; undefined means none
package policy
