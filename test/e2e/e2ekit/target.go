package e2ekit

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

// The names of what NewTarget creates in the target's namespace.
const (
	// SecretName is the credentials Secret of the Git server.
	SecretName = "git"
	// GitTargetName is the GitTarget.
	GitTargetName = "history"
	// RuleName is the WatchRule.
	RuleName = "record"
	// Branch is the repository's branch the GitTarget writes.
	Branch = "main"
	// BasePath is the GitTarget's folder in the repository.
	BasePath = "cluster"
)

// DefaultResources are the rule's resources when TargetOptions names none:
// ConfigMaps, Secrets and Deployments.
func DefaultResources() []v1alpha1.ResourceSelector {
	return []v1alpha1.ResourceSelector{
		{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}},
	}
}

// DefaultSync is the GitTarget's push and pull timing when TargetOptions
// sets none: a push 500ms after a commit or after 5 commits, a pull a
// minute.
func DefaultSync() v1alpha1.SyncSpec {
	return v1alpha1.SyncSpec{
		PushInterval: metav1.Duration{Duration: 500 * time.Millisecond}, PushAfterCommits: 5,
		PullInterval: metav1.Duration{Duration: time.Minute},
	}
}

// DefaultBatching is the GitTarget's batching when TargetOptions sets
// none: a commit after a second without changes, 50 changes or 10 seconds.
func DefaultBatching() v1alpha1.BatchingSpec {
	return v1alpha1.BatchingSpec{
		IdleTimeout: metav1.Duration{Duration: time.Second}, MaxChanges: 50,
		MaxAge: metav1.Duration{Duration: 10 * time.Second},
	}
}

// TargetOptions says how NewTarget builds a Target where the suites differ.
type TargetOptions struct {
	// Namespace is the namespace to create; it names the repository too,
	// so it is unique per target.
	Namespace string
	// Resources are the WatchRule's resources; nil for DefaultResources.
	Resources []v1alpha1.ResourceSelector
	// Sync is the GitTarget's push and pull timing; nil for DefaultSync.
	Sync *v1alpha1.SyncSpec
	// Batching is the GitTarget's batching; nil for DefaultBatching.
	Batching *v1alpha1.BatchingSpec
	// EditGitTarget changes the GitTarget before it is created.
	EditGitTarget []func(*v1alpha1.GitTarget)
	// EditRule changes the WatchRule before it is created; they run once
	// the Secret and the GitTarget exist.
	EditRule []func(*v1alpha1.WatchRule)
}

// Target is a namespace with a bare repository on the Git server, the
// server's credentials in the Secret SecretName, the GitTarget
// GitTargetName writing to it and the WatchRule RuleName.
type Target struct {
	// Namespace is the target's namespace.
	Namespace string
	// Repo is the repository's name on the Git server.
	Repo string
	// Client is the client that created the target.
	Client client.Client
	// Git is the Git server that holds the repository.
	Git *gitserver.Server
}

// NewTarget creates the namespace, the repository, the credentials
// Secret, the GitTarget and the WatchRule with c, in that order; it fails
// the spec when one cannot be created. The rule becomes ready once a
// manager runs (see WaitRule).
func NewTarget(ctx context.Context, c client.Client, git *gitserver.Server, o TargetOptions) Target {
	GinkgoHelper()
	t := Target{Namespace: o.Namespace, Repo: o.Namespace + ".git", Client: c, Git: git}
	Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.Namespace}})).To(Succeed())
	url, _ := git.CreateBareRepo(t.Repo, Branch)
	Expect(c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: SecretName},
		Data:       map[string][]byte{"username": []byte(git.Username()), "password": []byte(git.Password())},
	})).To(Succeed())
	sync, batching := DefaultSync(), DefaultBatching()
	if o.Sync != nil {
		sync = *o.Sync
	}
	if o.Batching != nil {
		batching = *o.Batching
	}
	gt := &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: GitTargetName},
		Spec: v1alpha1.GitTargetSpec{
			URL: url, Branch: Branch, BasePath: BasePath,
			SecretRef: &v1alpha1.LocalObjectReference{Name: SecretName},
			Commit:    v1alpha1.CommitSpec{CommitterName: "gitops-reverser", CommitterEmail: "bot@reverser.test", AuthorEmailDomain: "users.test"},
			Sync:      sync,
			Batching:  batching,
		},
	}
	for _, edit := range o.EditGitTarget {
		edit(gt)
	}
	Expect(c.Create(ctx, gt)).To(Succeed())
	resources := o.Resources
	if resources == nil {
		resources = DefaultResources()
	}
	rule := &v1alpha1.WatchRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: RuleName},
		Spec: v1alpha1.WatchRuleSpec{
			TargetRef: v1alpha1.LocalObjectReference{Name: GitTargetName},
			RuleSpec:  v1alpha1.RuleSpec{Resources: resources},
		},
	}
	for _, edit := range o.EditRule {
		edit(rule)
	}
	Expect(c.Create(ctx, rule)).To(Succeed())
	return t
}

// RuleReady returns the rule's Ready condition as "Status/Reason" once it
// speaks of the rule's current generation; "no condition" before, the
// error's text when the rule cannot be read.
func (t Target) RuleReady(ctx context.Context) string {
	wr := &v1alpha1.WatchRule{}
	if err := t.Client.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: RuleName}, wr); err != nil {
		return err.Error()
	}
	for _, c := range wr.Status.Conditions {
		if c.Type == v1alpha1.ReadyCondition && c.ObservedGeneration == wr.Generation {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return "no condition"
}

// WaitRule waits until RuleReady reads want ("True/RuleActive",
// "False/ModuleInvalid", ...).
func (t Target) WaitRule(ctx context.Context, want string) {
	GinkgoHelper()
	Eventually(func() string { return t.RuleReady(ctx) }).Should(Equal(want))
}

// Path returns the repository path of an object of the target's namespace
// under the default layout; group "" is the core group.
func (t Target) Path(group, resource, name string) string {
	if group == "" {
		group = "core"
	}
	return BasePath + "/" + t.Namespace + "/" + group + "/" + resource + "/" + name + ".yaml"
}

// File returns the content of p on the repository's branch, "" when it is
// absent.
func (t Target) File(p string) string {
	b, err := t.Git.ReadFile(t.Repo, Branch, p)
	if err != nil {
		return ""
	}
	return string(b)
}

// Files lists the repository's files under the target's namespace folder.
func (t Target) Files() []string {
	var out []string
	for _, f := range t.Git.ListFiles(t.Repo, Branch) {
		if strings.HasPrefix(f, BasePath+"/"+t.Namespace+"/") {
			out = append(out, f)
		}
	}
	return out
}

// CommitsTouching returns the commits (newest first) that changed p; it
// fails the spec when the branch has no commit yet.
func (t Target) CommitsTouching(p string) []gitserver.Commit {
	GinkgoHelper()
	var out []gitserver.Commit
	for _, c := range t.Git.Log(t.Repo, Branch) {
		files, err := t.Git.ChangedFiles(t.Repo, c.Hash)
		Expect(err).NotTo(HaveOccurred())
		for _, changed := range files {
			if changed == p {
				out = append(out, c)
			}
		}
	}
	return out
}

// AuthorsOf lists the authors of the commits that changed p, newest
// first; none while the branch has no commit.
func (t Target) AuthorsOf(p string) []string {
	GinkgoHelper()
	if _, ok := t.Git.Head(t.Repo, Branch); !ok {
		return nil
	}
	var out []string
	for _, c := range t.CommitsTouching(p) {
		out = append(out, c.AuthorName)
	}
	return out
}
