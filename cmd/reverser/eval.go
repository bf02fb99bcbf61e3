package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/offline"
)

// evalFlags are the flags of reverser eval.
type evalFlags struct {
	rules     []string
	policies  []string
	modules   []string
	target    string
	basePath  string
	operation string
	user      string
	groups    []string
	resource  string
	nsLabels  map[string]string
	output    string
}

func (c *cli) evalCommand() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval OBJECT.yaml --rule RULE.yaml [--policy POLICY.yaml] [--module NAME=FILE.wasm]",
		Short: "Run one object through a rule's policy, sanitizers and layout, without a cluster",
		Long: `Run objects through a rule as the operator would record them, without a cluster:
the rule's selection, its Rego policy (with the default policies), the built-in
sanitizer, its WASM sanitizers and its layout. Prints the decision with its
reasons, the file's path and its YAML.

OBJECT.yaml is a YAML or JSON file ("-" for stdin): one or more objects,
"kubectl get -o yaml" output (a v1 List), or an AdmissionReview (whose
operation, user and old object are used). RULE.yaml holds a WatchRule or
ClusterWatchRule, and may also hold the policy ConfigMaps and a GitTarget (for
the base path). Modules are read from files, and checked against the sha256
the rule pins.

Exit status: 0 when every object was evaluated (recorded or not), 1 when a
policy does not compile or evaluate, a module fails to load or run, or an
input cannot be read, 2 for a bad command line.`,
		Example: `  reverser eval deploy.yaml --rule config/samples/reverser_v1alpha1_watchrule.yaml
  kubectl get deploy web -o yaml | reverser eval - --rule rule.yaml --policy policy.yaml --output json
  reverser eval review.json --rule rule.yaml --module strip=strip.wasm --module teams=layout.wasm`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("eval takes exactly one OBJECT file (or - for stdin)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(f.rules) == 0 {
				return usageError{errors.New("eval needs --rule FILE")}
			}
			switch strings.ToUpper(f.operation) {
			case "CREATE", "UPDATE", "DELETE":
			default:
				return usageError{fmt.Errorf("--operation must be CREATE, UPDATE or DELETE, not %q", f.operation)}
			}
			if f.output != "text" && f.output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, not %q", f.output)}
			}
			return c.eval(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.rules, "rule", nil, "file with the WatchRule or ClusterWatchRule (may also hold policy ConfigMaps and a GitTarget); repeatable")
	fl.StringArrayVar(&f.policies, "policy", nil, "file with policy ConfigMaps the rule references; repeatable")
	fl.StringArrayVar(&f.modules, "module", nil, "NAME=FILE.wasm: the module the rule names NAME; repeatable")
	fl.StringVar(&f.target, "target", "", "file with the GitTarget (its basePath); default: a GitTarget in the rule files")
	fl.StringVar(&f.basePath, "base-path", "", "base path in the repository; overrides the GitTarget's")
	fl.StringVar(&f.operation, "operation", "CREATE", "operation of a plain object: CREATE, UPDATE or DELETE")
	fl.StringVar(&f.user, "user", "", "user the policy sees for a plain object; default: unknown")
	fl.StringArrayVar(&f.groups, "group", nil, "group of --user; repeatable")
	fl.StringVar(&f.resource, "resource", "", "plural resource of a plain object; default: guessed from its kind and the rule")
	fl.StringToStringVar(&f.nsLabels, "namespace-labels", nil, "labels of the object's namespace (k=v,...), for a namespaceSelector")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("operation", cobra.FixedCompletions([]string{"CREATE", "UPDATE", "DELETE"}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"rule", "policy", "target"} {
		_ = cmd.MarkFlagFilename(name, "yaml", "yml", "json")
	}
	return cmd
}

func (c *cli) eval(cmd *cobra.Command, objectFile string, f evalFlags) error {
	ctx := cmd.Context()
	in, ruleObjs, spec, err := ruleInputs(cmd, f.rules, f.policies, f.target, f.modules, f.basePath)
	if err != nil {
		return err
	}
	data, err := readFileOrStdin(objectFile, cmd.InOrStdin())
	if err != nil {
		return err
	}
	docs, err := offline.Documents(data)
	if err != nil {
		return fmt.Errorf("%s: %w", objectFile, err)
	}
	if len(docs) == 0 {
		return fmt.Errorf("%s holds no object", objectFile)
	}
	loader, err := offline.NewLoader(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = loader.Close(ctx) }()
	opts := offline.EvalOptions{Operation: v1alpha1.Operation(strings.ToUpper(f.operation)), Resource: f.resource}
	if f.user != "" {
		opts.User = change.User{Username: f.user, Groups: f.groups}
	}
	var results []offline.Result
	for _, ro := range ruleObjs {
		r, err := loader.Rule(ctx, ro, in, nil)
		if err != nil {
			return err
		}
		for _, doc := range docs {
			ch, err := offline.ChangeOf(doc, r.Spec, opts)
			if err != nil {
				return err
			}
			res, err := offline.Eval(ctx, ch, r, spec, f.nsLabels)
			if err != nil {
				return fmt.Errorf("%s on %s %s: %w", r.Key, res.Resource, objectRef(res), err)
			}
			results = append(results, res)
		}
		r.ReleaseModules(ctx)
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for i, res := range results {
		if i > 0 {
			_, _ = fmt.Fprintln(out)
		}
		printResult(out, res)
	}
	return nil
}

func objectRef(r offline.Result) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// printResult prints one result for people: a commented header, then the
// file's YAML as a document.
func printResult(w io.Writer, r offline.Result) {
	decision := "ignore"
	switch {
	case r.Record && r.Delete:
		decision = "remove the file"
	case r.Record:
		decision = "record"
	case !r.Selected:
		decision = "not selected"
	}
	_, _ = fmt.Fprintf(w, "# rule:     %s\n# object:   %s %s (%s by %s)\n# decision: %s\n", r.Rule, r.Resource, objectRef(r), r.Operation, r.User, decision)
	for _, reason := range r.Reasons {
		_, _ = fmt.Fprintf(w, "#   - %s\n", reason)
	}
	if r.Path != "" {
		_, _ = fmt.Fprintf(w, "# path:     %s\n", r.Path)
	}
	if r.YAML != "" {
		_, _ = fmt.Fprintf(w, "---\n%s", r.YAML)
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// ruleInputs reads the rules, policies, target and modules of eval and
// snapshot: the inputs, the rule objects (at least one) and the target's
// spec, with --base-path when given.
func ruleInputs(cmd *cobra.Command, rules, policies []string, target string, modules []string, basePath string) (offline.Inputs, []*unstructured.Unstructured, v1alpha1.GitTargetSpec, error) {
	in, err := readInputs(append(append(append([]string(nil), rules...), policies...), nonEmpty(target)...), modules)
	if err != nil {
		return in, nil, v1alpha1.GitTargetSpec{}, err
	}
	ruleObjs := in.RuleObjects()
	if len(ruleObjs) == 0 {
		return in, nil, v1alpha1.GitTargetSpec{}, fmt.Errorf("no WatchRule or ClusterWatchRule in %s", strings.Join(rules, ", "))
	}
	spec, err := in.Target()
	if err != nil {
		return in, nil, v1alpha1.GitTargetSpec{}, err
	}
	if cmd.Flags().Changed("base-path") {
		spec.BasePath = basePath
	}
	return in, ruleObjs, spec, nil
}

// readInputs parses the rule, policy and target files and reads the
// modules given as NAME=FILE.
func readInputs(files, modules []string) (offline.Inputs, error) {
	in := offline.Inputs{Modules: map[string][]byte{}}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return in, fmt.Errorf("reading %s: %w", name, err)
		}
		docs, err := offline.Documents(data)
		if err != nil {
			return in, fmt.Errorf("%s: %w", name, err)
		}
		in.Objects = append(in.Objects, docs...)
	}
	for _, m := range modules {
		name, file, ok := strings.Cut(m, "=")
		if !ok || name == "" || file == "" {
			return in, usageError{fmt.Errorf("--module %q: want NAME=FILE.wasm", m)}
		}
		wasm, err := os.ReadFile(file)
		if err != nil {
			return in, fmt.Errorf("reading module %s: %w", name, err)
		}
		in.Modules[name] = wasm
	}
	return in, nil
}

func readFileOrStdin(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}
