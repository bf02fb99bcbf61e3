package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/batch"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/reconcile"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// Destination is where a snapshot writes: a directory or a Git branch.
type Destination interface {
	// Files lists the files under prefix ("" for all).
	Files(prefix string) ([]gitstore.FileInfo, error)
	// Read returns a file's content.
	Read(p string) ([]byte, bool, error)
	// Apply writes and removes files; for Git as one commit with message.
	// It returns what to tell the user (the commit hash), "" for a
	// directory.
	Apply(ctx context.Context, writes []gitstore.FileChange, removals []string, message string) (string, error)
}

// Progress hears a snapshot's steps, per resource.
type Progress interface {
	// Listed: a resource's objects were listed.
	Listed(gvr schema.GroupVersionResource, objects int)
	// Rendered: one object of the resource was rendered to a file.
	Rendered(gvr schema.GroupVersionResource)
	// Failed: one object's render failed; its file is left as it is.
	Failed(gvr schema.GroupVersionResource, namespace, name string, err error)
}

// SnapshotInput is what one snapshot needs.
type SnapshotInput struct {
	// Rules select and render the objects; a later rule wins a path.
	Rules []*rules.Rule
	// Lister lists the live cluster's objects.
	Lister reconcile.Lister
	// Target gives the base path.
	Target v1alpha1.GitTargetSpec
	// NamespaceLabels resolves namespace labels for namespace selectors.
	NamespaceLabels rules.NamespaceLabeler
	// Progress hears the steps; nil for none.
	Progress Progress
}

// Summary is what a snapshot did.
type Summary struct {
	// Listed counts the objects listed, Written the files added or
	// updated, Unchanged those already equal, Removed the files of
	// objects that no longer exist or are no longer recorded, Failed the
	// objects whose render failed (their files stay as they were).
	Listed, Added, Updated, Unchanged, Removed, Failed int
	// Commit is the commit's hash for a Git destination; empty when
	// nothing changed or for a directory.
	Commit string
}

// Snapshot writes what the rules select in the cluster into dst through
// the operator's reconcile: list, render each object through its rule's
// stages, diff with what dst holds, and apply the difference at once (one
// commit for Git). Like the operator's reconcile it fails, writing
// nothing, when a selected resource cannot be listed.
func Snapshot(ctx context.Context, in SnapshotInput, dst Destination) (Summary, error) {
	var sum Summary
	base := strings.Trim(path.Clean("/"+in.Target.BasePath), "/")
	files, err := dst.Files(base)
	if err != nil {
		return sum, err
	}
	var mu sync.Mutex
	failed := 0
	render := batch.SnapshotRender(in.Target, func(_ *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, err error) {
		mu.Lock()
		failed++
		mu.Unlock()
		if in.Progress != nil {
			in.Progress.Failed(gvr, obj.GetNamespace(), obj.GetName(), err)
		}
	})
	if in.Progress != nil {
		inner := render
		render = func(ctx context.Context, r *rules.Rule, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) (string, []byte, error) {
			p, content, err := inner(ctx, r, gvr, obj)
			if err == nil {
				in.Progress.Rendered(gvr)
			}
			return p, content, err
		}
	}
	plan, err := reconcile.Make(ctx, reconcile.Input{
		Rules: in.Rules, Lister: progressLister{in.Lister, in.Progress}, Render: render,
		Files: files, Read: dst.Read, NamespaceLabels: in.NamespaceLabels,
	})
	if err != nil {
		return sum, fmt.Errorf("planning the snapshot: %w", err)
	}
	removals := make([]string, 0, len(plan.Removals))
	for _, rm := range plan.Removals {
		removals = append(removals, rm.Path)
	}
	sum = Summary{Listed: plan.Listed, Added: plan.Added, Updated: plan.Updated, Unchanged: plan.Unchanged,
		Removed: len(removals), Failed: failed}
	if len(plan.Writes)+len(removals) == 0 {
		return sum, nil
	}
	counts := fmt.Sprintf("added=%d updated=%d removed=%d", sum.Added, sum.Updated, sum.Removed)
	names := make([]string, 0, len(in.Rules))
	for _, r := range in.Rules {
		names = append(names, r.Key.String())
	}
	msg := fmt.Sprintf("Snapshot: %s\n\nThe files now equal what the rules select in the cluster (reverser snapshot).\n\nReverser-User: %s\nReverser-Operation: SNAPSHOT\nReverser-Reconcile: %s\nReverser-Rules: %s\n",
		counts, batch.ReconcileUser, counts, strings.Join(names, ", "))
	if sum.Commit, err = dst.Apply(ctx, plan.Writes, removals, msg); err != nil {
		return sum, err
	}
	return sum, nil
}

// progressLister reports each listing.
type progressLister struct {
	reconcile.Lister
	progress Progress
}

// List implements reconcile.Lister.
func (l progressLister) List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) (reconcile.Listing, error) {
	list, err := l.Lister.List(ctx, gvr, namespace)
	if err == nil && l.progress != nil {
		l.progress.Listed(gvr, len(list.Items))
	}
	return list, err
}

// NamespaceLabeler lists the namespaces once, at its first call, and
// answers their labels.
func NamespaceLabeler(ctx context.Context, lister reconcile.Lister) rules.NamespaceLabeler {
	var once sync.Once
	byName := map[string]labels.Set{}
	return func(ns string) (labels.Set, bool) {
		once.Do(func() {
			list, err := lister.List(ctx, schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, "")
			if err != nil {
				return // unknown: not selected
			}
			for _, n := range list.Items {
				byName[n.GetName()] = n.GetLabels()
			}
		})
		set, ok := byName[ns]
		return set, ok
	}
}

// Dir is a plain directory destination.
type Dir string

// Files implements Destination: the regular files under prefix, with their
// blob hashes.
func (d Dir) Files(prefix string) ([]gitstore.FileInfo, error) {
	root := filepath.Join(string(d), filepath.FromSlash(prefix))
	var out []gitstore.FileInfo
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if e.IsDir() {
			if e.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return err
		}
		out = append(out, gitstore.FileInfo{Path: filepath.ToSlash(rel), Hash: gitstore.BlobHash(b)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", root, err)
	}
	return out, nil
}

// Read implements Destination.
func (d Dir) Read(p string) ([]byte, bool, error) {
	b, err := os.ReadFile(filepath.Join(string(d), filepath.FromSlash(p)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, true, nil
}

// Apply implements Destination: it writes and removes the files (paths
// are the layout's, already cleaned and kept inside the base path).
func (d Dir) Apply(_ context.Context, writes []gitstore.FileChange, removals []string, _ string) (string, error) {
	for _, w := range writes {
		p := filepath.Join(string(d), filepath.FromSlash(w.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("creating the folder of %s: %w", w.Path, err)
		}
		if err := os.WriteFile(p, w.Content, 0o644); err != nil {
			return "", fmt.Errorf("writing %s: %w", w.Path, err)
		}
	}
	for _, r := range removals {
		if err := os.Remove(filepath.Join(string(d), filepath.FromSlash(r))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("removing %s: %w", r, err)
		}
	}
	return "", nil
}

// Repo is a Git branch destination: the snapshot is one commit, pushed.
type Repo struct {
	// Writer is open on the branch (gitstore.Open).
	Writer *gitstore.Writer
	// Author of the commit.
	Author gitstore.Signature
}

// Files implements Destination.
func (r Repo) Files(prefix string) ([]gitstore.FileInfo, error) {
	files, err := r.Writer.ListFiles(prefix)
	if err != nil {
		return nil, fmt.Errorf("listing the branch's files: %w", err)
	}
	return files, nil
}

// Read implements Destination.
func (r Repo) Read(p string) ([]byte, bool, error) { return r.Writer.ReadFile(p) }

// Apply implements Destination: one commit, then a push (never forced).
func (r Repo) Apply(ctx context.Context, writes []gitstore.FileChange, removals []string, message string) (string, error) {
	changes := append([]gitstore.FileChange(nil), writes...)
	for _, p := range removals {
		changes = append(changes, gitstore.FileChange{Path: p, Delete: true})
	}
	h, err := r.Writer.Commit(ctx, gitstore.CommitRequest{Author: r.Author, Message: message, Changes: changes})
	if errors.Is(err, gitstore.ErrNoChange) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("committing the snapshot: %w", err)
	}
	if _, err := r.Writer.Push(ctx); err != nil {
		return h.String(), fmt.Errorf("pushing the snapshot commit %s: %w", h, err)
	}
	return h.String(), nil
}
