package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DefaultTimeout bounds one evaluation when Options.Timeout is zero. It
// stops runaway policies; it is far above the tens of microseconds a normal
// evaluation costs because a loaded node can pause a goroutine for
// milliseconds.
const DefaultTimeout = 50 * time.Millisecond

// query reads the decision document. Comprehensions keep each part defined
// when a policy leaves it undefined, so one query answers all three.
const query = `record := [r | r := data.reverser.record]
reasons := [r | some r in data.reverser.reasons]
labels := {k: v | some k, v in data.reverser.labels}`

// unsafeBuiltins reach the network; a policy runs inside the webhook's
// millisecond budget and must depend on its input only.
var unsafeBuiltins = map[string]struct{}{
	"http.send":          {},
	"net.lookup_ip_addr": {},
}

// Options tune how a Policy is compiled and evaluated.
type Options struct {
	// Timeout bounds one evaluation; zero means DefaultTimeout.
	Timeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// Decision is what a policy decided about one change.
type Decision struct {
	// Record is true when the change is written to Git.
	Record bool
	// Reasons explain the decision, sorted; empty when nothing was said.
	Reasons []string
	// Labels are added to the commit message; nil when the policy sets none.
	Labels map[string]string
}

// Policy is a compiled and prepared set of Rego modules. It is immutable and
// safe for concurrent Eval calls from many goroutines.
type Policy struct {
	revision string
	modules  []string
	timeout  time.Duration
	prepared rego.PreparedEvalQuery
	rules    ruleIndex
	// usesWith: a module uses `with`, so the policy is given documents
	// converted whole (see lazyDoc).
	usesWith bool
}

// Compile parses, compiles (in strict mode) and prepares modules, keyed by
// file name. A module that does not parse or compile yields a *CompileError.
func Compile(ctx context.Context, modules map[string]string, opts Options) (*Policy, error) {
	names := sortedNames(modules)
	if len(names) == 0 {
		return nil, errors.New("compiling policy: no modules")
	}
	ropts := []func(*rego.Rego){
		rego.Query(query),
		rego.Strict(true),
		rego.UnsafeBuiltins(unsafeBuiltins),
	}
	for _, name := range names {
		ropts = append(ropts, rego.Module(name, modules[name]))
	}
	prepared, err := rego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		if ce := newCompileError(err); ce != nil {
			return nil, ce
		}
		return nil, fmt.Errorf("preparing policy: %w", err)
	}
	return &Policy{
		revision: Revision(modules),
		modules:  names,
		timeout:  opts.timeout(),
		prepared: prepared,
		rules:    indexRules(modules),
		usesWith: usesWith(modules),
	}, nil
}

// Revision is the identity of a set of modules: the sha256 (hex) of their
// names and sources. Equal sources have equal revisions whatever the order
// of the map.
func Revision(modules map[string]string) string {
	h := sha256.New()
	for _, name := range sortedNames(modules) {
		// Length prefixes keep ("a", "bc") and ("ab", "c") apart.
		src := modules[name]
		fmt.Fprintf(h, "%d:%s%d:%s", len(name), name, len(src), src)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedNames(modules map[string]string) []string {
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Revision is the sha256 of the policy's sources (see the function
// Revision).
func (p *Policy) Revision() string { return p.revision }

// Modules are the file names of the policy's modules, sorted.
func (p *Policy) Modules() []string { return slices.Clone(p.modules) }

// Eval converts in and evaluates it; see EvalDocument. To evaluate one change
// against several policies, convert it once with NewDocument.
func (p *Policy) Eval(ctx context.Context, in *Input) (Decision, error) {
	doc, err := NewDocument(in)
	if err != nil {
		return Decision{}, err
	}
	return p.EvalDocument(ctx, doc)
}

// EvalDocument evaluates the policy on doc within the policy's timeout (or
// until ctx ends). Evaluation errors (a conflict between rules, a timeout, a
// decision of the wrong type) are returned as an *EvalError, never a partial
// decision, and their text holds no value of doc; a timeout wraps
// context.DeadlineExceeded, a cancelled ctx wraps its error.
func (p *Policy) EvalDocument(ctx context.Context, doc Document) (Decision, error) {
	input := doc.value
	if doc.lazy != nil {
		doc.lazy.mu.Lock()
		defer doc.lazy.mu.Unlock()
		var err error
		if input, err = doc.lazy.input(p.usesWith); err != nil {
			return Decision{}, err
		}
	}
	if input == nil {
		return Decision{}, errors.New("evaluating policy: empty document (use NewDocument)")
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, &EvalError{Revision: p.revision, Kind: KindCancelled, Detail: err.Error(), cause: err}
	}

	// One timer and, for a cancellable ctx, one callback stop the
	// evaluation: cheaper than context.WithTimeout plus the goroutine OPA
	// starts per evaluation to watch a context.
	cancel := topdown.NewCancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(p.timeout, func() {
		timedOut.Store(true)
		cancel.Cancel()
	})
	defer timer.Stop()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, cancel.Cancel)
		defer stop()
	}

	rs, err := p.prepared.Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(noMetrics),
		rego.EvalGenerateJSON(keepTerm),
	)
	if err != nil {
		switch {
		case timedOut.Load():
			return Decision{}, &EvalError{Revision: p.revision, Kind: KindTimeout,
				Detail: "stopped after " + p.timeout.String(), cause: context.DeadlineExceeded}
		case ctx.Err() != nil:
			return Decision{}, &EvalError{Revision: p.revision, Kind: KindCancelled, Detail: ctx.Err().Error(), cause: ctx.Err()}
		}
		return Decision{}, p.evalError(err)
	}
	d, err := decisionOf(rs)
	if err != nil {
		return Decision{}, p.evalError(err)
	}
	return d, nil
}

// noMetrics skips the metrics OPA otherwise allocates per evaluation.
var noMetrics = metrics.NoOp()

// keepTerm hands the query's bindings over as *ast.Term, skipping OPA's
// conversion to Go maps; decisionOf reads the terms directly.
func keepTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

func shortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// decisionOf reads the bindings of query (as *ast.Term, see keepTerm).
func decisionOf(rs rego.ResultSet) (Decision, error) {
	if len(rs) != 1 {
		// The query's comprehensions are always defined: no result
		// means the evaluation went wrong in a way OPA did not report.
		return Decision{}, decisionError(fmt.Sprintf("decision query returned %d results, want 1", len(rs)))
	}
	b := rs[0].Bindings
	d := Decision{Record: true}

	records, err := bindingOf[*ast.Array](b, "record")
	if err != nil {
		return Decision{}, err
	}
	if records.Len() > 0 {
		rec, ok := records.Elem(0).Value.(ast.Boolean)
		if !ok {
			return Decision{}, decisionError(fmt.Sprintf("data.reverser.record has type %s, want boolean", ast.ValueName(records.Elem(0).Value)))
		}
		d.Record = bool(rec)
	}

	reasons, err := bindingOf[*ast.Array](b, "reasons")
	if err != nil {
		return Decision{}, err
	}
	if n := reasons.Len(); n > 0 {
		d.Reasons = make([]string, 0, n)
		for i := range n {
			s, ok := reasons.Elem(i).Value.(ast.String)
			if !ok {
				return Decision{}, decisionError(fmt.Sprintf("data.reverser.reasons holds a value of type %s, want strings", ast.ValueName(reasons.Elem(i).Value)))
			}
			d.Reasons = append(d.Reasons, string(s))
		}
		sort.Strings(d.Reasons)
		d.Reasons = slices.Compact(d.Reasons)
	}

	labels, err := bindingOf[ast.Object](b, "labels")
	if err != nil {
		return Decision{}, err
	}
	if labels.Len() > 0 {
		d.Labels = make(map[string]string, labels.Len())
		err := labels.Iter(func(k, v *ast.Term) error {
			ks, ok := k.Value.(ast.String)
			if !ok {
				return decisionError(fmt.Sprintf("data.reverser.labels has a key of type %s, want strings", ast.ValueName(k.Value)))
			}
			vs, ok := v.Value.(ast.String)
			if !ok {
				// Not the key: a policy may compute it from the object.
				return decisionError(fmt.Sprintf("data.reverser.labels holds a value of type %s, want strings", ast.ValueName(v.Value)))
			}
			d.Labels[string(ks)] = string(vs)
			return nil
		})
		if err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

// bindingOf returns the query variable name's value as a V.
func bindingOf[V ast.Value](b rego.Vars, name string) (V, error) {
	var zero V
	t, ok := b[name].(*ast.Term)
	if !ok {
		return zero, decisionError("decision query has no " + name + " binding")
	}
	v, ok := t.Value.(V)
	if !ok {
		return zero, decisionError(fmt.Sprintf("decision query bound %s to %s", name, ast.ValueName(t.Value)))
	}
	return v, nil
}

// CompileError is a policy that does not parse or compile. Its message lists
// every problem as file:line:col: code: message, ready for a condition.
type CompileError struct {
	// Problems are the compiler's errors in source order.
	Problems []Problem
}

// Problem is one parse or compile error.
type Problem struct {
	// File is the module's file name.
	File string
	// Line and Col locate the problem, 1-based; zero when unknown.
	Line, Col int
	// Code is OPA's error code, e.g. rego_parse_error.
	Code string
	// Message is OPA's message.
	Message string
}

// String formats the problem as file:line:col: code: message.
func (p Problem) String() string {
	var sb strings.Builder
	if p.File != "" || p.Line > 0 {
		sb.WriteString(p.File)
		sb.WriteString(":")
		sb.WriteString(strconv.Itoa(p.Line))
		sb.WriteString(":")
		sb.WriteString(strconv.Itoa(p.Col))
		sb.WriteString(": ")
	}
	sb.WriteString(p.Code)
	sb.WriteString(": ")
	sb.WriteString(p.Message)
	return sb.String()
}

// Error lists the problems, separated by "; ".
func (e *CompileError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "policy does not compile: " + strings.Join(parts, "; ")
}

// newCompileError collects the *ast.Error values in err (OPA returns them in
// ast.Errors or rego.Errors), or returns nil when err holds none.
func newCompileError(err error) *CompileError {
	var problems []Problem
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *ast.Error:
			p := Problem{Code: e.Code, Message: e.Message}
			if e.Location != nil {
				p.File, p.Line, p.Col = e.Location.File, e.Location.Row, e.Location.Col
			}
			problems = append(problems, p)
		case ast.Errors:
			for _, x := range e {
				walk(x)
			}
		case rego.Errors:
			for _, x := range e {
				walk(x)
			}
		default:
			// OPA wraps compile errors, e.g. "bundle activation failed: %w".
			var (
				aes ast.Errors
				res rego.Errors
				ae  *ast.Error
			)
			switch {
			case errors.As(err, &aes):
				walk(aes)
			case errors.As(err, &res):
				walk(res)
			case errors.As(err, &ae):
				walk(ae)
			}
		}
	}
	walk(err)
	if len(problems) == 0 {
		return nil
	}
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i], problems[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return &CompileError{Problems: problems}
}
