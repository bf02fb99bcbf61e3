// Command reverser is the user's tool for gitops-reverser. It uploads WASM
// plugin modules to the cluster or to an OCI registry and prints the source
// to paste into a WatchRule:
//
//	reverser plugin push FILE.wasm --name NAME [--namespace NS] [--kubeconfig PATH] [--key KEY] [--secret]
//	reverser plugin push FILE.wasm --oci oci://registry/repository:tag [--insecure]
//	reverser plugin digest FILE.wasm
//
// See docs/plugins.md, "Uploading modules".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

const usage = `Usage:
  reverser plugin push FILE.wasm --name NAME [--namespace NS] [--kubeconfig PATH] [--key KEY] [--secret]
      Gzip the module and store it in ConfigMap NAME (or Secret NAME with --secret),
      split over further objects when it is larger than 900 KiB compressed.
  reverser plugin push FILE.wasm --oci oci://REGISTRY/REPOSITORY:TAG [--insecure]
      Push the module as a single-layer OCI artifact (credentials from ~/.docker/config.json).
  reverser plugin digest FILE.wasm
      Print the module's sha256.

Both push forms print the source to paste into a rule's module entry.
`

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
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	c := &cli{
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		newClient:  kubeClient,
		ociOptions: []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)},
	}
	code := c.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) < 2 || args[0] != "plugin" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			_, _ = fmt.Fprint(c.stdout, usage)
			return 0
		}
		_, _ = fmt.Fprint(c.stderr, usage)
		return exitUsage
	}
	var err error
	switch args[1] {
	case "push":
		err = c.pluginPush(ctx, args[2:])
	case "digest":
		err = c.pluginDigest(args[2:])
	default:
		err = usageError{fmt.Errorf("unknown command %q", "plugin "+args[1])}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		_, _ = fmt.Fprint(c.stdout, usage)
		return 0
	case errors.As(err, &ue):
		_, _ = fmt.Fprintf(c.stderr, "reverser: %v\n\n%s", err, usage)
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

func (c *cli) pluginDigest(args []string) error {
	fs := flag.NewFlagSet("reverser plugin digest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError{errors.New("plugin digest takes exactly one FILE.wasm")}
	}
	wasm, err := os.ReadFile(files[0])
	if err != nil {
		return fmt.Errorf("reading module: %w", err)
	}
	_, err = fmt.Fprintln(c.stdout, sha256Hex(wasm))
	return err
}

func (c *cli) pluginPush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reverser plugin push", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		p          clusterPush
		kubeconfig string
		ociRef     string
		insecure   bool
	)
	fs.StringVar(&p.Name, "name", "", "ConfigMap or Secret name (also the module label value)")
	fs.StringVar(&p.Namespace, "namespace", "", "namespace; default: the kubeconfig context's")
	fs.StringVar(&p.Key, "key", defaultPushKey, "key that holds the gzipped module")
	fs.BoolVar(&p.Secret, "secret", false, "store the module in a Secret instead of a ConfigMap")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default: $KUBECONFIG or ~/.kube/config")
	fs.StringVar(&ociRef, "oci", "", "push to this OCI reference (oci://registry/repository:tag) instead of the cluster")
	fs.BoolVar(&insecure, "insecure", false, "with --oci: talk plain HTTP to the registry")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError{errors.New("plugin push takes exactly one FILE.wasm")}
	}
	switch {
	case ociRef != "" && (p.Name != "" || p.Secret || p.Namespace != "" || kubeconfig != ""):
		return usageError{errors.New("--oci cannot be combined with --name, --namespace, --kubeconfig or --secret")}
	case ociRef == "" && p.Name == "":
		return usageError{errors.New("plugin push needs --name (or --oci)")}
	case ociRef == "" && insecure:
		return usageError{errors.New("--insecure only applies to --oci")}
	}
	wasm, err := os.ReadFile(files[0])
	if err != nil {
		return fmt.Errorf("reading module: %w", err)
	}
	if !strings.HasPrefix(string(wasm[:min(len(wasm), 4)]), "\x00asm") {
		return fmt.Errorf("%s is not a WebAssembly module (no \\0asm header)", files[0])
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

// parseInterleaved parses flags that may follow positional arguments
// ("push FILE --name x"), which flag.Parse alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
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
