package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// SubresourceScale is the scale subresource, the one subresource whose
// writes are attributed (by the replicas they set).
const SubresourceScale = "scale"

// scaleFingerprintPrefix marks the fingerprint of a scale request, which
// carries only the replicas it sets.
const scaleFingerprintPrefix = "scale:spec.replicas="

// ScaleFingerprint is the Pending.Fingerprint of a scale subresource write
// that sets replicas: the confirm stage compares it with the persisted
// object's spec.replicas through the same function.
func ScaleFingerprint(replicas int64) string {
	return scaleFingerprintPrefix + strconv.FormatInt(replicas, 10)
}

// NeedLeaderElection is false: every replica may receive admission
// requests, and its workers only feed its own in-memory store.
func (h *Handler) NeedLeaderElection() bool { return false }

// Start runs the workers until ctx ends. It implements controller-runtime's
// manager.Runnable.
func (h *Handler) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < h.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case req := <-h.queue:
					queueDepth.Dec()
					h.handleGuarded(req)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// handleGuarded is handle for the workers: a review that makes a worker
// panic (a bug; FuzzHandler calls handle itself, so it still finds them)
// loses its claim, and the process, which records every other change from
// the watch, runs on. The panic's value is not logged, since it may quote
// the review; its stack is.
func (h *Handler) handleGuarded(req *request) {
	defer func() {
		if r := recover(); r != nil {
			h.taint(req.key, dropFailed)
			h.opts.Log.Error(errors.New("admission worker panicked"), "admission request not recorded",
				"resource", req.Resource.Resource, "namespace", req.Namespace, "name", req.Name,
				"operation", req.Operation, "stack", string(debug.Stack()))
		}
	}()
	h.handle(req)
}

// handle processes one queued request and gives its bytes back.
func (h *Handler) handle(req *request) {
	defer h.finish(req)
	if err := h.process(req); err != nil {
		// A review the worker could not read is a lost claim, whoever
		// sent it.
		h.taint(req.key, dropFailed)
		h.opts.Log.V(1).Info("admission request not recorded", "error", err.Error(),
			"resource", req.Resource.Resource, "namespace", req.Namespace, "name", req.Name, "operation", req.Operation)
	}
}

// finish ends a queued request: its claim is no longer queued, its bytes
// are given back and its body is recycled (its object and oldObject must
// not be read after).
func (h *Handler) finish(req *request) {
	h.opts.Recorder.ClaimDone(req.key)
	h.release(req.cost)
	putBody(req.body)
	req.body, req.Object, req.OldObject = nil, nil, nil
}

// process turns one queued request into a pending change if a rule selects
// it. Errors name the object, never its contents.
func (h *Handler) process(req *request) error {
	op := v1alpha1.Operation(req.Operation)
	switch op {
	case v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete:
	default:
		return nil // CONNECT is never persisted.
	}
	if req.SubResource != "" && (req.SubResource != SubresourceScale || op != v1alpha1.OperationUpdate) {
		return nil // Only scale writes are attributed; status is not recorded.
	}
	res := schema.GroupVersionResource{Group: req.Resource.Group, Version: req.Resource.Version, Resource: req.Resource.Resource}

	obj, err := decodeObject(req.Object)
	if err != nil {
		return fmt.Errorf("decoding object: %w", err)
	}
	// An UPDATE's oldObject is decoded only when the rules need its
	// labels: the fast decode read its uid and resourceVersion exactly as
	// unstructured would, and saw that it decodes, so skipping it changes
	// nothing but the cost (about a third of a worker's time on a
	// Deployment, docs/benchmarks.md).
	var old *unstructured.Unstructured
	oldKeysOnly := op == v1alpha1.OperationUpdate && req.oldKeys.exact && req.oldKeys.decodes
	if !oldKeysOnly {
		if old, err = decodeObject(req.OldObject); err != nil {
			return fmt.Errorf("decoding oldObject: %w", err)
		}
	}
	if obj == nil && op != v1alpha1.OperationDelete {
		// The API server always sends the object it is about to write; a
		// review without it is forged or broken (and a scale review would
		// have no replicas to read).
		return fmt.Errorf("%s request carries no object", op)
	}
	// The object whose labels the rules see: the new one, or for DELETE
	// the one being deleted.
	subject := obj
	if op == v1alpha1.OperationDelete || subject == nil {
		subject = old
	}
	if subject == nil {
		return fmt.Errorf("%s request carries no object", op)
	}
	// An update that moves the object out of a rule's selection removes
	// its file there: the claim names who did it.
	if !h.selected(req, res, op, subject) {
		if oldKeysOnly {
			if old, err = decodeObject(req.OldObject); err != nil {
				return fmt.Errorf("decoding oldObject: %w", err)
			}
		}
		if op != v1alpha1.OperationUpdate || old == nil || !h.selected(req, res, v1alpha1.OperationDelete, old) {
			return nil
		}
	}
	matchedTotal.Inc()

	p := change.Pending{
		User: change.User{
			Username: req.UserInfo.Username,
			UID:      req.UserInfo.UID,
			Groups:   req.UserInfo.Groups,
			Extra:    req.UserInfo.Extra,
		},
		Operation:   op,
		Resource:    res,
		SubResource: req.SubResource,
		Namespace:   claimNamespace(res, req.Namespace),
		Name:        req.Name,
		UID:         subject.GetUID(),
		Received:    req.received,
	}
	if p.Name == "" {
		p.Name = subject.GetName()
	}
	if op != v1alpha1.OperationCreate {
		// The API server hands the webhook the resourceVersion the write
		// starts from, in object and oldObject alike.
		p.OldResourceVersion = subject.GetResourceVersion()
		var oldUID types.UID
		var oldRV string
		switch {
		case old != nil:
			oldUID, oldRV = old.GetUID(), old.GetResourceVersion()
		case oldKeysOnly:
			oldUID, oldRV = types.UID(req.oldKeys.keys[0]), req.oldKeys.keys[1]
		}
		if oldRV != "" {
			p.OldResourceVersion = oldRV
		}
		if oldUID != "" {
			p.UID = oldUID
		}
	}
	switch {
	case op == v1alpha1.OperationDelete:
	case req.SubResource == SubresourceScale:
		replicas, found, err := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if err != nil {
			return fmt.Errorf("reading Scale spec.replicas: %w", err)
		}
		if !found {
			replicas = 0 // omitted means zero in autoscaling/v1 Scale
		}
		p.Fingerprint = ScaleFingerprint(replicas)
	default:
		fp, err := transform.Fingerprint(obj)
		if err != nil {
			return fmt.Errorf("fingerprinting: %w", err)
		}
		p.Fingerprint = fp
	}
	if telemetry.Tracing() {
		p.User.Claim = telemetry.Record(trace.SpanContext{}, telemetry.SpanAdmission, req.received, time.Now(),
			telemetry.ObjectAttrs(res, p.Namespace, p.Name, string(op))...)
	}
	h.opts.Recorder.AddPending(p)
	return nil
}

// selected asks the index. A scale request carries a Scale object without
// the parent's labels, so its label selectors cannot be evaluated here:
// it is recorded when a rule would select it for some labels, and the
// watch stage, which sees the parent's labels, decides. An unselected
// pending change only expires.
func (h *Handler) selected(req *request, res schema.GroupVersionResource, op v1alpha1.Operation, subject *unstructured.Unstructured) bool {
	rr := rules.Request{
		Resource:  res.GroupResource(),
		Namespace: claimNamespace(res, req.Namespace),
		Labels:    labels.Set(subject.GetLabels()),
		Operation: op,
	}
	if req.SubResource == "" {
		return len(h.opts.Index.Match(rr, h.opts.NamespaceLabels)) > 0 || h.namespaceUnknown(rr)
	}
	for _, r := range h.opts.Index.Rules() {
		for _, use := range r.Resources {
			if use.GVR.GroupResource() != rr.Resource {
				continue
			}
			unlabelled := *r
			unlabelled.Labels = nil
			if unlabelled.Selects(rr, h.opts.NamespaceLabels) {
				return true
			}
		}
	}
	return false
}

// namespaceUnknown reports whether a rule with a namespace selector would
// select the request but the namespace's labels are not known yet: one
// apply that creates a Namespace and objects in it reaches the webhook
// before the operator's cache has the Namespace. The claim is kept; the
// watch, which waits for the namespace's labels, decides (an unselected
// claim is settled or expires).
func (h *Handler) namespaceUnknown(rr rules.Request) bool {
	if rr.Namespace == "" || h.opts.NamespaceLabels == nil {
		return false
	}
	for _, r := range h.opts.Index.ForResource(rr.Resource) {
		if r.NamespaceLabels == nil || r.NamespaceLabels.Empty() {
			continue
		}
		anyNamespace := *r
		anyNamespace.NamespaceLabels = nil
		if anyNamespace.Selects(rr, nil) {
			_, ok := h.opts.NamespaceLabels(rr.Namespace)
			return !ok
		}
	}
	return false
}

// claimNamespace is the namespace of the object a request writes, as the
// watch sees it: for a Namespace the API server puts the namespace's own
// name in the request's namespace field, but a Namespace is cluster-scoped
// (its labels are in the request's object; no cache holds them yet when
// it is created).
func claimNamespace(res schema.GroupVersionResource, namespace string) string {
	if res.Group == "" && res.Resource == "namespaces" {
		return ""
	}
	return namespace
}

// taintOf is the taint of a request that could not be recorded: the keys
// process would have filed it under.
func taintOf(req *request) change.Taint {
	objUID, objRV, objName := req.objKeys.keys[0], req.objKeys.keys[1], req.objKeys.keys[2]
	if !req.objKeys.scanned {
		objUID, objRV, objName = scanObject(req.Object)
	}
	oldUID, oldRV, oldName := req.oldKeys.keys[0], req.oldKeys.keys[1], req.oldKeys.keys[2]
	if !req.oldKeys.scanned {
		oldUID, oldRV, oldName = scanObject(req.OldObject)
	}
	present := objUID != "" || objRV != "" || objName != ""
	return taintFrom(req.Operation, schema.GroupVersionResource{Group: req.Resource.Group, Version: req.Resource.Version, Resource: req.Resource.Resource},
		req.Namespace, req.Name, present, [3]string{objUID, objRV, objName}, [3]string{oldUID, oldRV, oldName})
}

// taint is the taint of a scanned review.
func (s scanned) taint() change.Taint {
	return taintFrom(s.operation, schema.GroupVersionResource{Group: s.group, Version: s.version, Resource: s.resource},
		s.namespace, s.name, s.objectFound, [3]string{s.objUID, s.objRV, s.objName}, [3]string{s.oldUID, s.oldRV, s.oldName})
}

// taintFrom derives the keys as process does: the subject is the new
// object, or the old one for DELETE; oldObject's uid and resourceVersion
// win for UPDATE and DELETE. obj and old are uid, resourceVersion, name.
// An operation that is not CREATE, UPDATE or DELETE taints nothing, an
// empty one (not found) every key.
func taintFrom(op string, res schema.GroupVersionResource, namespace, name string, objPresent bool, obj, old [3]string) change.Taint {
	t := change.Taint{Operation: v1alpha1.Operation(op), Resource: res, Namespace: claimNamespace(res, namespace), Name: name}
	switch t.Operation {
	case v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete, "":
	default:
		return change.Taint{}
	}
	subject := obj
	if t.Operation == v1alpha1.OperationDelete || !objPresent {
		subject = old
	}
	t.UID = types.UID(subject[0])
	if t.Name == "" {
		t.Name = subject[2]
	}
	if t.Operation != v1alpha1.OperationCreate {
		t.OldResourceVersion = subject[1]
		if old[1] != "" {
			t.OldResourceVersion = old[1]
		}
		if old[0] != "" {
			t.UID = types.UID(old[0])
		}
	}
	return t
}

// decodeObject decodes a raw object as the dynamic client does (integers
// stay int64), so that fingerprints compare with the watch's objects; null
// or absent gives nil.
func decodeObject(raw json.RawMessage) (*unstructured.Unstructured, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	m := map[string]interface{}{}
	if err := utiljson.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
