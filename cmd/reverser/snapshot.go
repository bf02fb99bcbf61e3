package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/gitops-reverser/gitops-reverser/engine/batch"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/offline"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// Environment variables that hold Git credentials for snapshot --repo,
// kept out of the command line (and so out of ps and shell history).
const (
	envGitPassword = "REVERSER_GIT_PASSWORD"
	envGitToken    = "REVERSER_GIT_TOKEN"
)

// snapshotFlags are the flags of reverser snapshot.
type snapshotFlags struct {
	rules, policies, modules []string
	target, basePath         string
	kubeconfig               string
	dir, repo, branch        string
	username                 string
	sshKey, knownHosts       string
	authorName, authorEmail  string
}

func (c *cli) snapshotCommand() *cobra.Command {
	var f snapshotFlags
	cmd := &cobra.Command{
		Use:   "snapshot --rule RULE.yaml (--dir DIR | --repo URL) [--kubeconfig PATH]",
		Short: "Write what rules select in a live cluster into a directory or a Git branch, once",
		Long: `Write what the given rules select in a live cluster (the current kubeconfig)
into a local directory or a Git branch, once, through the operator's reconcile:
list every selected resource, render each object through its rule's policy,
sanitizers and layout (Secrets redacted as the rule says), compare with what
the destination holds, and write the difference: for Git as one commit, pushed.
Files of objects that no longer exist are removed, as the operator's reconcile
removes them.

Git credentials: --username with $REVERSER_GIT_PASSWORD, or $REVERSER_GIT_TOKEN
(HTTPS); --ssh-key and --known-hosts (SSH). A progress display is shown when
stdout is a terminal, plain lines otherwise; a summary at the end.

Exit status: 0 when the snapshot was written (or nothing changed), 1 when a
rule, a listing, a render or the write failed, 2 for a bad command line. An
object whose render failed (a failing module) keeps its file as it is and
makes the exit status 1.`,
		Example: `  reverser snapshot --rule rule.yaml --dir ./cluster
  REVERSER_GIT_TOKEN=... reverser snapshot --rule rule.yaml --policy policy.yaml \
      --repo https://git.example.com/infra/cluster.git --branch main`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError{fmt.Errorf("snapshot takes no arguments, got %q", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case len(f.rules) == 0:
				return usageError{errors.New("snapshot needs --rule FILE")}
			case (f.dir == "") == (f.repo == ""):
				return usageError{errors.New("snapshot needs exactly one of --dir and --repo")}
			}
			return c.snapshot(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.rules, "rule", nil, "file with WatchRules/ClusterWatchRules (may also hold policy ConfigMaps and a GitTarget); repeatable")
	fl.StringArrayVar(&f.policies, "policy", nil, "file with policy ConfigMaps the rules reference; repeatable")
	fl.StringArrayVar(&f.modules, "module", nil, "NAME=FILE.wasm: the module the rules name NAME; repeatable")
	fl.StringVar(&f.target, "target", "", "file with the GitTarget (its basePath); default: a GitTarget in the rule files")
	fl.StringVar(&f.basePath, "base-path", "", "base path in the repository or directory; overrides the GitTarget's")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: $KUBECONFIG or ~/.kube/config")
	fl.StringVar(&f.dir, "dir", "", "write into this directory (created if missing)")
	fl.StringVar(&f.repo, "repo", "", "commit to this Git repository (https://, ssh://, file:// or a bare repository's path) and push")
	fl.StringVar(&f.branch, "branch", "main", "with --repo: the branch")
	fl.StringVar(&f.username, "username", "", "with --repo: HTTPS user ($"+envGitPassword+" holds the password)")
	fl.StringVar(&f.sshKey, "ssh-key", "", "with --repo: SSH private key file")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "with --repo: known_hosts file for SSH")
	fl.StringVar(&f.authorName, "author-name", "gitops-reverser", "with --repo: the commit's author and committer name")
	fl.StringVar(&f.authorEmail, "author-email", "gitops-reverser@localhost", "with --repo: the commit's author and committer e-mail")
	for _, name := range []string{"rule", "policy", "target"} {
		_ = cmd.MarkFlagFilename(name, "yaml", "yml", "json")
	}
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

func (c *cli) snapshot(cmd *cobra.Command, f snapshotFlags) error {
	ctx := cmd.Context()
	start := time.Now()
	in, ruleObjs, spec, err := ruleInputs(cmd, f.rules, f.policies, f.target, f.modules, f.basePath)
	if err != nil {
		return err
	}

	cfg, err := c.restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating a discovery client: %w", err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		return fmt.Errorf("reading the API server's resources: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating a dynamic client: %w", err)
	}
	lister := batch.DynamicLister{Client: dyn}

	loader, err := offline.NewLoader(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = loader.Close(ctx) }()
	rs := make([]*rules.Rule, 0, len(ruleObjs))
	for _, ro := range ruleObjs {
		r, err := loader.Rule(ctx, ro, in, mapper)
		if err != nil {
			return err
		}
		defer r.ReleaseModules(ctx)
		rs = append(rs, r)
	}

	var dst offline.Destination
	where := f.dir
	if f.dir != "" {
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", f.dir, err)
		}
		dst = offline.Dir(f.dir)
	} else {
		w, err := openRepo(ctx, f)
		if err != nil {
			return err
		}
		defer func() { _ = w.Close() }()
		dst = offline.Repo{Writer: w, Author: gitstore.Signature{Name: f.authorName, Email: f.authorEmail}}
		where = gitstore.RedactURL(f.repo) + " branch " + f.branch
	}

	progress := newSnapshotProgress(cmd.OutOrStdout(), c.isTerminal != nil && c.isTerminal())
	sum, err := offline.Snapshot(ctx, offline.SnapshotInput{Rules: rs, Lister: lister, Target: spec,
		NamespaceLabels: offline.NamespaceLabeler(ctx, lister), Progress: progress}, dst)
	progress.done()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	_, _ = fmt.Fprintf(out, "snapshot of %d rule(s) into %s: %d objects listed, %d files added, %d updated, %d unchanged, %d removed",
		len(rs), where, sum.Listed, sum.Added, sum.Updated, sum.Unchanged, sum.Removed)
	if sum.Commit != "" {
		_, _ = fmt.Fprintf(out, ", commit %s", sum.Commit)
	}
	_, _ = fmt.Fprintf(out, " (%s)\n", time.Since(start).Round(time.Millisecond))
	if sum.Failed > 0 {
		return fmt.Errorf("%d object(s) could not be rendered; their files were left as they were", sum.Failed)
	}
	return nil
}

// openRepo opens a clone of the branch in memory, with credentials from
// the flags and the environment.
func openRepo(ctx context.Context, f snapshotFlags) (*gitstore.Writer, error) {
	data := map[string][]byte{}
	if f.username != "" {
		data[gitstore.SecretKeyUsername] = []byte(f.username)
	}
	if v := os.Getenv(envGitPassword); v != "" {
		data[gitstore.SecretKeyPassword] = []byte(v)
	}
	if v := os.Getenv(envGitToken); v != "" {
		data[gitstore.SecretKeyToken] = []byte(v)
	}
	for key, file := range map[string]string{gitstore.SecretKeyIdentity: f.sshKey, gitstore.SecretKeyKnownHosts: f.knownHosts} {
		if file == "" {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		data[key] = b
	}
	var auth transport.AuthMethod
	if len(data) > 0 {
		var err error
		if auth, err = gitstore.AuthFromSecret(f.repo, data); err != nil {
			return nil, err
		}
	}
	w, err := gitstore.Open(ctx, gitstore.Config{URL: f.repo, Branch: f.branch, Auth: auth,
		Committer: gitstore.Signature{Name: f.authorName, Email: f.authorEmail}})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// snapshotProgress shows a snapshot's progress per resource: on a
// terminal one line redrawn in place per resource, otherwise one plain line
// per resource once it is done.
type snapshotProgress struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	order    []schema.GroupVersionResource
	listed   map[schema.GroupVersionResource]int
	rendered map[schema.GroupVersionResource]int
	failed   []string
	current  schema.GroupVersionResource
	last     time.Time
}

func newSnapshotProgress(w io.Writer, terminal bool) *snapshotProgress {
	return &snapshotProgress{w: w, terminal: terminal, listed: map[schema.GroupVersionResource]int{},
		rendered: map[schema.GroupVersionResource]int{}}
}

// Listed implements offline.Progress.
func (p *snapshotProgress) Listed(gvr schema.GroupVersionResource, objects int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	if _, seen := p.listed[gvr]; !seen {
		p.order = append(p.order, gvr)
	}
	p.listed[gvr] += objects
	p.current = gvr
	p.drawLocked(true)
}

// Rendered implements offline.Progress.
func (p *snapshotProgress) Rendered(gvr schema.GroupVersionResource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rendered[gvr]++
	p.drawLocked(false)
}

// Failed implements offline.Progress.
func (p *snapshotProgress) Failed(gvr schema.GroupVersionResource, namespace, name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ref := name
	if namespace != "" {
		ref = namespace + "/" + name
	}
	p.failed = append(p.failed, fmt.Sprintf("%s %s: %v", resourceLabel(gvr), ref, err))
}

func (p *snapshotProgress) line(gvr schema.GroupVersionResource) string {
	return fmt.Sprintf("%-40s %6d listed %6d rendered", resourceLabel(gvr), p.listed[gvr], p.rendered[gvr])
}

// drawLocked redraws the current resource's line on a terminal, at most
// every 50 ms unless forced.
func (p *snapshotProgress) drawLocked(force bool) {
	if !p.terminal || p.current.Resource == "" {
		return
	}
	if !force && time.Since(p.last) < 50*time.Millisecond {
		return
	}
	p.last = time.Now()
	_, _ = fmt.Fprintf(p.w, "\r\033[K%s", p.line(p.current))
}

// finishLocked ends the current resource's line.
func (p *snapshotProgress) finishLocked() {
	if p.current.Resource == "" {
		return
	}
	if p.terminal {
		_, _ = fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(p.current))
	} else {
		_, _ = fmt.Fprintln(p.w, p.line(p.current))
	}
	p.current = schema.GroupVersionResource{}
}

// done ends the display and lists the objects that failed.
func (p *snapshotProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	sort.Strings(p.failed)
	for _, f := range p.failed {
		_, _ = fmt.Fprintf(p.w, "failed: %s\n", f)
	}
}

func resourceLabel(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Resource
	}
	return gvr.Resource + "." + gvr.Group
}
