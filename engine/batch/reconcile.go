package batch

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// ObjectLister lists the objects of a resource, in one namespace or (with
// an empty namespace) in all.
type ObjectLister interface {
	List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) ([]unstructured.Unstructured, error)
	// Get returns one object; nil and no error when it does not exist.
	Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error)
}

// ReconcileUser is the user a snapshot's policy input shows: its objects
// were not written by anyone the operator saw.
const ReconcileUser = "gitops-reverser:snapshot"

// snapshotRules writes the current state of every object a rule selects
// when the rule becomes active or changes, so that the repository starts
// from what the cluster holds rather than only from later changes. It adds
// and updates files; it never deletes (a rule that is not ready must not
// wipe what it wrote).
func (b *Batcher) snapshotRules(ctx context.Context) {
	if b.opts.Index == nil || b.opts.Lister == nil {
		return
	}
	// Changes already queued happened before the listing below: they go
	// first, with their authors, because the snapshot's commit runs on
	// the target's worker after them (see writeSnapshot).
	if b.snapshotted == nil {
		b.snapshotted = map[rules.Key]int64{}
	}
	live := map[rules.Key]bool{}
	for _, r := range b.opts.Index.Rules() {
		live[r.Key] = true
		if gen, ok := b.snapshotted[r.Key]; ok && gen == r.Generation && !b.snapshotPending[r.Key] {
			continue
		}
		if err := b.snapshotRule(ctx, r); err != nil {
			b.opts.Log.Error(err, "writing the snapshot of a rule; will retry", "rule", r.Key.String())
			if b.snapshotPending == nil {
				b.snapshotPending = map[rules.Key]bool{}
			}
			b.snapshotPending[r.Key] = true
			continue
		}
		delete(b.snapshotPending, r.Key)
		b.snapshotted[r.Key] = r.Generation
	}
	for k := range b.snapshotted {
		if !live[k] {
			delete(b.snapshotted, k)
		}
	}
}

// snapshotMargin keeps recently written objects out of a snapshot for a
// while: their changes may still be on their way through the webhook, the
// watch and an open author session, and a snapshot that wrote them first
// would turn the attributed commit into a no-op. They are checked again
// after the margin and written then only if the repository still differs.
const snapshotMargin = 20 * time.Second

// recheck is an object left out of a snapshot because it changed recently.
type recheck struct {
	rule     rules.Key
	gvr      schema.GroupVersionResource
	ns, name string
	due      time.Time
	attempts int
}

// lastWrite is when the object was last written, from managedFields (the
// API server records every manager's last operation) or its creation.
func lastWrite(obj *unstructured.Unstructured) time.Time {
	last := obj.GetCreationTimestamp().Time
	for _, mf := range obj.GetManagedFields() {
		if mf.Time != nil && mf.Time.After(last) {
			last = mf.Time.Time
		}
	}
	return last
}

func (b *Batcher) snapshotRule(ctx context.Context, r *rules.Rule) error {
	objs := map[schema.GroupVersionResource][]unstructured.Unstructured{}
	for _, res := range r.Resources {
		ns := ""
		if res.Namespaced {
			ns = r.Namespace
		}
		list, err := b.opts.Lister.List(ctx, res.GVR, ns)
		if err != nil {
			return fmt.Errorf("listing %s: %w", res.GVR.String(), err)
		}
		objs[res.GVR] = list
	}
	return b.writeSnapshot(ctx, r, objs, 0)
}

// recheckDue writes the objects whose recheck is due, if the repository
// still differs from them.
func (b *Batcher) recheckDue(ctx context.Context, now time.Time) {
	var keep []recheck
	byRule := map[rules.Key]map[schema.GroupVersionResource][]unstructured.Unstructured{}
	attempts := map[rules.Key]int{}
	for _, rc := range b.rechecks {
		if now.Before(rc.due) {
			keep = append(keep, rc)
			continue
		}
		obj, err := b.opts.Lister.Get(ctx, rc.gvr, rc.ns, rc.name)
		if err != nil || obj == nil {
			continue // gone: its delete event covers it
		}
		if byRule[rc.rule] == nil {
			byRule[rc.rule] = map[schema.GroupVersionResource][]unstructured.Unstructured{}
		}
		byRule[rc.rule][rc.gvr] = append(byRule[rc.rule][rc.gvr], *obj)
		if rc.attempts > attempts[rc.rule] {
			attempts[rc.rule] = rc.attempts
		}
	}
	b.rechecks = keep
	for key, objs := range byRule {
		r, ok := b.opts.Index.Get(key)
		if !ok {
			continue
		}
		if err := b.writeSnapshot(ctx, r, objs, attempts[key]); err != nil {
			b.opts.Log.Error(err, "writing a snapshot recheck", "rule", key.String())
		}
	}
}

// writeSnapshot commits the rule's view of objs in one commit, leaving
// recently written objects for a later recheck.
func (b *Batcher) writeSnapshot(ctx context.Context, r *rules.Rule, objs map[schema.GroupVersionResource][]unstructured.Unstructured, attempt int) error {
	return b.onTarget(ctx, r.Target, func(t *target) error { return b.writeSnapshotOn(ctx, t, r, objs, attempt) })
}

// writeSnapshotOn runs on the target's worker.
func (b *Batcher) writeSnapshotOn(ctx context.Context, t *target, r *rules.Rule, objs map[schema.GroupVersionResource][]unstructured.Unstructured, attempt int) error {
	now := time.Now()
	files := map[string]fileChange{}
	for _, res := range r.Resources {
		list := objs[res.GVR]
		for i := range list {
			obj := &list[i]
			if now.Sub(lastWrite(obj)) < snapshotMargin && attempt < 5 {
				b.rechecks = append(b.rechecks, recheck{rule: r.Key, gvr: res.GVR, ns: obj.GetNamespace(), name: obj.GetName(),
					due: now.Add(snapshotMargin), attempts: attempt + 1})
				continue
			}
			req := rules.Request{Resource: res.GVR.GroupResource(), Namespace: obj.GetNamespace(),
				Labels: labels.Set(obj.GetLabels()), Operation: v1alpha1.OperationCreate}
			if !r.Selects(req, b.opts.NamespaceLabels) || obj.GetDeletionTimestamp() != nil {
				continue
			}
			c := change.Change{Operation: v1alpha1.OperationCreate, Resource: res.GVR, Namespace: obj.GetNamespace(),
				Name: obj.GetName(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), Object: obj,
				User: change.User{Username: ReconcileUser}, Rules: []*rules.Rule{r}, Observed: time.Now()}
			if r.Policy != nil {
				pd := policyDecider{c: c}
				d, err := pd.decide(ctx, r.Policy)
				if err == nil && !d.Record {
					continue
				}
			}
			if _, open := b.breakers.open(r, now); open {
				continue // failing closed, without spending a deadline per object
			}
			f, err := render(ctx, c, r, t.spec)
			if errors.Is(err, transform.ErrSkipped) {
				continue
			}
			b.moduleFailed(r, err)
			if err != nil {
				// The same failure a change would meet: fail closed for
				// this object, the rule says why on its next change.
				renderErrors.Inc()
				b.opts.Log.Error(err, "rendering the snapshot of an object", "rule", r.Key.String(),
					"resource", res.GVR.String(), "namespace", obj.GetNamespace(), "name", obj.GetName())
				continue
			}
			if old := t.place(placementOf(r, c), f); old != "" {
				if _, written := files[old]; !written {
					files[old] = fileChange{path: old, delete: true, movedFrom: true}
				}
			}
			files[f.path] = f
		}
	}
	if len(files) == 0 {
		return nil
	}
	// Open sessions go first, so the snapshot (newer) lands on top.
	for _, s := range t.sessions.all() {
		t.commit(ctx, s, b.opts.Log)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	req := gitstore.CommitRequest{
		Author: gitstore.Signature{Name: t.spec.Commit.CommitterName, Email: t.spec.Commit.CommitterEmail},
		Message: fmt.Sprintf("Snapshot of %s: %d object(s)\n\nThe state of the objects the rule selects when it became active or changed.\n\nReverser-User: %s\nReverser-Operation: SNAPSHOT\nReverser-Rule: %s\nReverser-Target: %s\n",
			r.Key, len(paths), ReconcileUser, r.Key, t.key),
	}
	if strings.TrimSpace(req.Author.Name) == "" {
		req.Author.Name = "gitops-reverser"
	}
	for _, p := range paths {
		req.Changes = append(req.Changes, gitstore.FileChange{Path: p, Content: files[p].content, Delete: files[p].delete})
	}
	h, err := t.writer.Commit(ctx, req)
	switch {
	case errors.Is(err, gitstore.ErrNoChange):
		return nil
	case err != nil:
		commitErrors.Inc()
		return fmt.Errorf("committing the snapshot: %w", err)
	}
	commits.Inc()
	b.opts.Log.Info("committed a snapshot", "rule", r.Key.String(), "target", t.key.String(), "files", len(paths), "commit", h.String())
	if t.unpushed == 0 {
		t.firstUnp = time.Now()
	}
	t.unpushed++
	return nil
}

// DynamicLister lists objects with a dynamic client, page by page.
type DynamicLister struct {
	// Client reaches the API server.
	Client dynamic.Interface
}

// List implements ObjectLister.
func (l DynamicLister) List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) ([]unstructured.Unstructured, error) {
	var out []unstructured.Unstructured
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := l.Client.Resource(gvr).Namespace(namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvr.String(), err)
		}
		out = append(out, list.Items...)
		if list.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = list.GetContinue()
	}
}

// Get implements ObjectLister.
func (l DynamicLister) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	obj, err := l.Client.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s/%s: %w", gvr.String(), namespace, name, err)
	}
	return obj, nil
}
