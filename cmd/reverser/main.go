// Command reverser is the user's tool for gitops-reverser:
//
//	reverser eval      run one object through a rule offline (policy, sanitizers, layout)
//	reverser snapshot  write what rules select in a live cluster to a directory or Git, once
//	reverser plugin push|digest  upload WASM modules, print their sha256
//	reverser version   print the version
//	reverser completion bash|zsh|fish|powershell
//
// See docs/cli.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// exitUsage is the exit code for bad command lines.
const exitUsage = 2

// cli holds what a command needs from its surroundings, so tests can run
// commands in-process.
type cli struct {
	stdout, stderr io.Writer
	// newClient returns a client for kubeconfig (empty: the usual loading
	// rules) and the namespace of its current context.
	newClient func(kubeconfig string) (client.Client, string, error)
	// ociOptions are added to every registry call.
	ociOptions []remote.Option
	// restConfig returns the REST config of kubeconfig (snapshot).
	restConfig func(kubeconfig string) (*rest.Config, error)
	// isTerminal reports whether stdout is a terminal (progress display).
	isTerminal func() bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	c := &cli{
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		newClient:  kubeClient,
		ociOptions: []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)},
		restConfig: restConfig,
		isTerminal: func() bool { return term.IsTerminal(int(os.Stdout.Fd())) },
	}
	code := c.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	err := root.ExecuteContext(ctx)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		_, _ = fmt.Fprintf(c.stderr, "reverser: %v\nRun 'reverser --help' for usage.\n", err)
		return exitUsage
	default:
		_, _ = fmt.Fprintf(c.stderr, "reverser: %v\n", err)
		return 1
	}
}

// usageError marks a bad command line.
type usageError struct{ error }

// Unwrap returns the underlying error.
func (e usageError) Unwrap() error { return e.error }

// rootCommand builds the command tree; a fresh one per run, so tests can
// run commands in-process.
func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "reverser",
		Short: "The user's tool for gitops-reverser",
		Long: `reverser tries rules offline, captures a cluster into Git once, and uploads
WASM plugin modules. See docs/cli.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return nil
		},
		// A bare "reverser" prints help and fails, as a usage error.
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _ = fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
			return usageError{errors.New("no command given")}
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	plugin := &cobra.Command{
		Use:   "plugin",
		Short: "Upload WASM plugin modules and print their digest",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q", "plugin "+args[0])}
			}
			_, _ = fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
			return usageError{errors.New("plugin needs a command: push or digest")}
		},
		Args: cobra.ArbitraryArgs,
	}
	plugin.AddCommand(c.pluginPushCommand(), c.pluginDigestCommand())
	root.AddCommand(plugin, c.evalCommand(), c.snapshotCommand(), c.versionCommand())
	return root
}

func (c *cli) pluginDigestCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "digest FILE.wasm",
		Short: "Print the module's sha256",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("plugin digest takes exactly one FILE.wasm")}
			}
			return nil
		},
		ValidArgsFunction: wasmFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("reading module: %w", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), sha256Hex(wasm))
			return err
		},
	}
}

// wasmFiles completes .wasm file names.
func wasmFiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"wasm"}, cobra.ShellCompDirectiveFilterFileExt
}

func (c *cli) pluginPushCommand() *cobra.Command {
	var (
		p          clusterPush
		kubeconfig string
		ociRef     string
		insecure   bool
	)
	cmd := &cobra.Command{
		Use:   "push FILE.wasm (--name NAME | --oci oci://REGISTRY/REPOSITORY:TAG)",
		Short: "Upload a module to the cluster or an OCI registry",
		Long: `Gzip the module and store it in ConfigMap NAME (or Secret NAME with --secret),
split over further objects when it is larger than 900 KiB compressed; or push
it as a single-layer OCI artifact (credentials from ~/.docker/config.json).
Both forms print the source to paste into a rule's module entry.`,
		Example: `  reverser plugin push strip.wasm --name strip --namespace team-a
  reverser plugin push strip.wasm --oci oci://ghcr.io/me/strip:v1`,
		ValidArgsFunction: wasmFiles,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("plugin push takes exactly one FILE.wasm")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case ociRef != "" && (p.Name != "" || p.Secret || p.Namespace != "" || kubeconfig != ""):
				return usageError{errors.New("--oci cannot be combined with --name, --namespace, --kubeconfig or --secret")}
			case ociRef == "" && p.Name == "":
				return usageError{errors.New("plugin push needs --name (or --oci)")}
			case ociRef == "" && insecure:
				return usageError{errors.New("--insecure only applies to --oci")}
			}
			return c.pluginPush(cmd.Context(), args[0], p, kubeconfig, ociRef, insecure)
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Name, "name", "", "ConfigMap or Secret name (also the module label value)")
	f.StringVar(&p.Namespace, "namespace", "", "namespace; default: the kubeconfig context's")
	f.StringVar(&p.Key, "key", defaultPushKey, "key that holds the gzipped module")
	f.BoolVar(&p.Secret, "secret", false, "store the module in a Secret instead of a ConfigMap")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default: $KUBECONFIG or ~/.kube/config")
	f.StringVar(&ociRef, "oci", "", "push to this OCI reference (oci://registry/repository:tag) instead of the cluster")
	f.BoolVar(&insecure, "insecure", false, "with --oci: talk plain HTTP to the registry")
	return cmd
}

func (c *cli) pluginPush(ctx context.Context, file string, p clusterPush, kubeconfig, ociRef string, insecure bool) error {
	wasm, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading module: %w", err)
	}
	if !strings.HasPrefix(string(wasm[:min(len(wasm), 4)]), "\x00asm") {
		return fmt.Errorf("%s is not a WebAssembly module (no \\0asm header)", file)
	}

	if ociRef != "" {
		src, err := pushToOCI(ctx, ociRef, wasm, insecure, c.ociOptions...)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(c.stderr, "# pushed %d bytes to %s\n# paste into a rule's module entry:\n", len(wasm), src.URL)
		return c.printSnippet(src)
	}

	kc, ns, err := c.newClient(kubeconfig)
	if err != nil {
		return err
	}
	if p.Namespace == "" {
		p.Namespace = ns
	}
	report, err := pushToCluster(ctx, kc, p, wasm)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(c.stderr, "# stored %d bytes (%d gzipped) in %s %s/%s",
		len(wasm), report.Gzipped, kindName(p.Secret), p.Namespace, report.Objects[0])
	if len(report.Objects) > 1 {
		_, _ = fmt.Fprintf(c.stderr, " and %d chunk objects", len(report.Objects)-1)
	}
	if len(report.Stale) > 0 {
		_, _ = fmt.Fprintf(c.stderr, "; deleted %d stale chunks", len(report.Stale))
	}
	_, _ = fmt.Fprintf(c.stderr, "\n# paste into a rule's module entry (rules in namespace %s):\n", p.Namespace)
	return c.printSnippet(report.Source)
}

func (c *cli) printSnippet(src v1alpha1.ModuleSource) error {
	s, err := ruleSnippet(src)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(c.stdout, s)
	return err
}

// kubeClient builds a client from kubeconfig with the usual loading rules
// ($KUBECONFIG, ~/.kube/config, in-cluster) and returns the current
// context's namespace.
func kubeClient(kubeconfig string) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading namespace from kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, "", fmt.Errorf("building Kubernetes client: %w", err)
	}
	return c, ns, nil
}

// restConfig loads kubeconfig with the usual loading rules.
func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, nil
}
