package policy

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Kinds of EvalError.
const (
	// KindConflict: two rules, or one rule twice, gave one key different
	// values (OPA's eval_conflict_error).
	KindConflict = "conflict"
	// KindTypeError: a built-in or an operator got an operand of the wrong
	// type (eval_type_error).
	KindTypeError = "type error"
	// KindBuiltinError: a built-in failed on a value of the right type,
	// e.g. to_number on "abc" (eval_builtin_error).
	KindBuiltinError = "builtin error"
	// KindTimeout: the evaluation ran past the policy's timeout.
	KindTimeout = "timeout"
	// KindCancelled: the caller's context ended the evaluation.
	KindCancelled = "cancelled"
	// KindInvalidDecision: the decision document has the wrong shape, e.g.
	// a label that is not a string.
	KindInvalidDecision = "invalid decision"
	// KindInternal: anything else OPA reported.
	KindInternal = "internal error"
)

// EvalError is a policy that failed to evaluate. Its message says what a
// rule's author needs to fix the policy (the module and line, the rule, the
// kind of failure, a built-in's name and operand types) and nothing of the
// input's values: OPA's own messages quote values (to_number's parse error
// repeats its operand, a label's key may come from the object), the input
// may be a Secret, and the message goes into the rule's conditions and the
// operator's log, which people read who may not read that Secret.
type EvalError struct {
	// Revision is the policy's revision (see Policy.Revision).
	Revision string
	// Kind is one of the Kind* constants.
	Kind string
	// File and Line locate the failing expression or rule in the policy's
	// modules; empty and zero when OPA gave no location.
	File string
	Line int
	// Rule is the rule at File:Line, e.g. data.reverser.labels; empty when
	// unknown.
	Rule string
	// Detail adds what is known without quoting a value, e.g. "plus:
	// operand 1 must be number but got string"; may be empty.
	Detail string

	// cause is context.DeadlineExceeded or the context's error for a
	// timeout or a cancellation, so errors.Is works; nil otherwise. OPA's
	// error is deliberately not kept: unwrapping it would give its message
	// back.
	cause error
}

// Error formats the failure as
// "evaluating policy REV: FILE:LINE: rule RULE: KIND: DETAIL".
func (e *EvalError) Error() string {
	var sb strings.Builder
	sb.WriteString("evaluating policy ")
	sb.WriteString(shortRevision(e.Revision))
	sb.WriteString(": ")
	if e.File != "" {
		sb.WriteString(e.File)
		if e.Line > 0 {
			sb.WriteString(":")
			sb.WriteString(strconv.Itoa(e.Line))
		}
		sb.WriteString(": ")
	}
	if e.Rule != "" {
		sb.WriteString("rule ")
		sb.WriteString(e.Rule)
		sb.WriteString(": ")
	}
	sb.WriteString(e.Kind)
	if e.Detail != "" {
		sb.WriteString(": ")
		sb.WriteString(e.Detail)
	}
	return sb.String()
}

// Unwrap returns context.DeadlineExceeded or context.Canceled for a
// timeout or a cancellation, else nil.
func (e *EvalError) Unwrap() error { return e.cause }

// decisionError is a decision document of the wrong shape. Its messages
// are built by decisionOf from names and type names only.
type decisionError string

func (e decisionError) Error() string { return string(e) }

// operandTypeMessage is the one form of an OPA type error whose text is
// safe to show: built by builtins.NewOperandTypeErr from the built-in's
// declared types and the operand's type name, never its value.
var operandTypeMessage = regexp.MustCompile(`^operand [0-9]+ must be [a-z{}(), ]+ but got [a-z]+( containing [a-z]+)?$`)

// conflictDetails are OPA's conflict messages, by a phrase that identifies
// each; the message itself names a rule path that is better taken from
// the location.
var conflictDetails = []struct{ phrase, detail string }{
	{"for the same inputs", "a function produced different values for the same inputs"},
	{"produced conflicting values", "a complete rule produced different values"},
	{"object keys must be unique", "an object rule produced different values for one key"},
	{"multiple outputs", "an expression produced different values"},
}

// evalError reduces an error of OPA's evaluation to an *EvalError.
func (p *Policy) evalError(err error) *EvalError {
	e := &EvalError{Revision: p.revision, Kind: KindInternal}
	var de decisionError
	if errors.As(err, &de) {
		e.Kind, e.Detail = KindInvalidDecision, string(de)
		return e
	}
	var te *topdown.Error
	if !errors.As(err, &te) {
		return e
	}
	if te.Location != nil {
		e.File, e.Line = te.Location.File, te.Location.Row
		e.Rule = p.rules.at(e.File, e.Line)
	}
	switch te.Code {
	case topdown.ConflictErr:
		e.Kind = KindConflict
		for _, c := range conflictDetails {
			if strings.Contains(te.Message, c.phrase) {
				e.Detail = c.detail
				break
			}
		}
	case topdown.TypeErr:
		e.Kind = KindTypeError
		name, rest, ok := builtinPrefix(te.Message)
		switch {
		case ok && operandTypeMessage.MatchString(rest):
			e.Detail = name + ": " + rest
		case ok:
			e.Detail = "in " + name
		}
	case topdown.BuiltinErr:
		e.Kind = KindBuiltinError
		if name, _, ok := builtinPrefix(te.Message); ok {
			e.Detail = "in " + name
		}
	case topdown.CancelErr:
		e.Kind = KindCancelled
	}
	return e
}

// builtinPrefix splits "name: rest", OPA's form of a built-in's error,
// when name is a built-in OPA knows.
func builtinPrefix(msg string) (name, rest string, ok bool) {
	name, rest, found := strings.Cut(msg, ": ")
	if !found {
		return "", "", false
	}
	if _, known := ast.BuiltinMap[name]; !known {
		return "", "", false
	}
	return name, rest, true
}

// ruleIndex finds the rule at a line of a module.
type ruleIndex map[string][]ruleSpan // by module file name

// ruleSpan is the lines one rule takes in its module.
type ruleSpan struct {
	first, last int
	name        string
}

// indexRules parses modules to record where each rule is. A module that
// does not parse is left out (Compile reports it).
func indexRules(modules map[string]string) ruleIndex {
	idx := ruleIndex{}
	for file, src := range modules {
		m, err := ast.ParseModuleWithOpts(file, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil || m == nil {
			continue
		}
		pkg := m.Package.Path.String()
		for _, r := range m.Rules {
			if r.Location == nil {
				continue
			}
			name := r.Head.Ref().ConstantPrefix().String()
			if !strings.HasPrefix(name, "data.") {
				name = pkg + "." + name
			}
			idx[file] = append(idx[file], ruleSpan{
				first: r.Location.Row,
				last:  r.Location.Row + strings.Count(string(r.Location.Text), "\n"),
				name:  name,
			})
		}
	}
	return idx
}

// at returns the name of the rule spanning line of file, or "".
func (idx ruleIndex) at(file string, line int) string {
	for _, s := range idx[file] {
		if s.first <= line && line <= s.last {
			return s.name
		}
	}
	return ""
}
