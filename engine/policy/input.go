package policy

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// UnknownUser is the username of a change that no admission request
// attributed (a watch event without a pending change).
const UnknownUser = "unknown"

// Input is the document a policy sees as `input`: the shape of an admission
// request (admission.k8s.io/v1 AdmissionRequest), with the objects decoded.
type Input struct {
	// Operation is CREATE, UPDATE, DELETE or CONNECT.
	Operation string
	// UserInfo is who made the change; an empty Username is shown to the
	// policy as UnknownUser.
	UserInfo authenticationv1.UserInfo
	// Object is the new state (nil for DELETE).
	Object map[string]any
	// OldObject is the previous state (nil for CREATE, or when unknown).
	OldObject map[string]any
	// Resource is the group/version/resource written.
	Resource metav1.GroupVersionResource
	// SubResource is e.g. "status" or "scale"; empty for the main resource.
	SubResource string
	// Namespace of the object; empty for cluster-scoped objects.
	Namespace string
	// Name of the object; when empty it is taken from the object's
	// metadata.name (CREATE with generateName has none in the request).
	Name string
	// DryRun is true for dry-run requests.
	DryRun bool
	// Kind is the group/version/kind of Object.
	Kind metav1.GroupVersionKind
}

// InputFromAdmission returns the Input of an admission request, decoding its
// objects from their raw JSON.
func InputFromAdmission(req *admissionv1.AdmissionRequest) (Input, error) {
	if req == nil {
		return Input{}, fmt.Errorf("admission request is nil")
	}
	obj, err := decodeObject(req.Object.Raw)
	if err != nil {
		return Input{}, fmt.Errorf("decoding object of admission request %s: %w", req.UID, err)
	}
	old, err := decodeObject(req.OldObject.Raw)
	if err != nil {
		return Input{}, fmt.Errorf("decoding oldObject of admission request %s: %w", req.UID, err)
	}
	return Input{
		Operation:   string(req.Operation),
		UserInfo:    req.UserInfo,
		Object:      obj,
		OldObject:   old,
		Resource:    req.Resource,
		SubResource: req.SubResource,
		Namespace:   req.Namespace,
		Name:        req.Name,
		DryRun:      req.DryRun != nil && *req.DryRun,
		Kind:        req.Kind,
	}, nil
}

// decodeObject decodes a JSON object keeping numbers exact (json.Number),
// which OPA converts to its number values without going through float64.
func decodeObject(raw []byte) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("invalid JSON object: %w", err)
	}
	return obj, nil
}

// Document is an Input converted to OPA's value form. Converting once and
// evaluating the Document against every policy that applies to a change
// saves the conversion, which costs more than the evaluation itself.
//
// A Document of a change with one object (CREATE, DELETE) is converted on
// demand (see lazyDoc); it keeps references to the Input's objects, which
// must not change while the Document is in use.
type Document struct {
	value ast.Value
	lazy  *lazyDoc
}

// NewDocument converts in to a Document. Objects are converted directly,
// without a JSON round trip, when they hold only the types a JSON or
// Kubernetes unstructured decoder produces. A Secret's values are redacted
// first (see redactSecret): no policy ever sees them.
func NewDocument(in *Input) (Document, error) {
	secret := isSecretInput(in)
	view := redactSecret(in.Object, secret)
	if secret && in.Object != nil && in.OldObject != nil {
		// A value change must not read as a status-only update.
		view = transform.MarkChangedSecretValues(view, in.Object, in.OldObject)
	}
	oldView := redactSecret(in.OldObject, secret)
	name := in.Name
	if name == "" {
		name = objectName(in.Object)
	}
	if name == "" {
		name = objectName(in.OldObject)
	}
	parts := docParts{in: in, name: name, obj: view, old: oldView}
	if (view == nil || oldView == nil) && convertible(view) && convertible(oldView) {
		// One object: what a policy does not read is never converted.
		// An update keeps the eager conversion, which shares what the
		// two objects have in common (see pairTerms).
		// The Document keeps its own copy of the Input's fields for a
		// policy that uses `with` (see lazyDoc.input).
		cp := *in
		parts.in = &cp
		return Document{lazy: &lazyDoc{parts: parts, value: ast.LazyObject(parts.native())}}, nil
	}
	v, err := parts.eager()
	if err != nil {
		return Document{}, err
	}
	return Document{value: v}, nil
}

// docParts are the parts of an input document: the Input, the name the
// document gives, and the objects as policies see them (redacted).
type docParts struct {
	in       *Input
	name     string
	obj, old map[string]any
}

// field is one field of the input document.
type field struct {
	key   string
	value ast.Value
}

// headerFields are the input document's fields but object and oldObject.
func headerFields(in *Input, name string) [8]field {
	return [8]field{
		{"operation", ast.String(in.Operation)},
		{"userInfo", userInfoValue(&in.UserInfo)},
		{"resource", ast.NewObject(
			item("group", ast.String(in.Resource.Group)),
			item("version", ast.String(in.Resource.Version)),
			item("resource", ast.String(in.Resource.Resource)),
		)},
		{"subResource", ast.String(in.SubResource)},
		{"namespace", ast.String(in.Namespace)},
		{"name", ast.String(name)},
		{"dryRun", ast.Boolean(in.DryRun)},
		{"kind", ast.NewObject(
			item("group", ast.String(in.Kind.Group)),
			item("version", ast.String(in.Kind.Version)),
			item("kind", ast.String(in.Kind.Kind)),
		)},
	}
}

// eager converts the whole document.
func (d *docParts) eager() (ast.Value, error) {
	obj, old, err := objectTerms(d.obj, d.old)
	if err != nil {
		return nil, err
	}
	header := headerFields(d.in, d.name)
	pairs := make([][2]*ast.Term, 0, len(header)+2)
	for _, f := range header {
		pairs = append(pairs, item(f.key, f.value))
	}
	pairs = append(pairs, [2]*ast.Term{keyTerm("object", nil), obj}, [2]*ast.Term{keyTerm("oldObject", nil), old})
	return ast.NewObject(pairs...), nil
}

// native is the document as ast.LazyObject takes it: Go values only
// (ast.JSON, which json.marshal uses, hands a lazy object's Go values over
// as they are), the objects as Go maps or nil (null).
func (d *docParts) native() map[string]any {
	in, name := d.in, d.name
	u := &in.UserInfo
	username := u.Username
	if username == "" {
		username = UnknownUser
	}
	groups := make([]any, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = g
	}
	extra := make(map[string]any, len(u.Extra))
	for k, vals := range u.Extra {
		vs := make([]any, len(vals))
		for i, v := range vals {
			vs[i] = v
		}
		extra[k] = vs
	}
	m := map[string]any{
		"operation": in.Operation,
		"userInfo":  map[string]any{"username": username, "uid": u.UID, "groups": groups, "extra": extra},
		"object":    nil,
		"oldObject": nil,
		"resource": map[string]any{
			"group": in.Resource.Group, "version": in.Resource.Version, "resource": in.Resource.Resource,
		},
		"subResource": in.SubResource,
		"namespace":   in.Namespace,
		"name":        name,
		"dryRun":      in.DryRun,
		"kind":        map[string]any{"group": in.Kind.Group, "version": in.Kind.Version, "kind": in.Kind.Kind},
	}
	if d.obj != nil {
		m["object"] = d.obj
	}
	if d.old != nil {
		m["oldObject"] = d.old
	}
	return m
}

// objectName is metadata.name of obj, or "".
func objectName(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	return name
}

// isSecretInput reports whether the request is about a core/v1 Secret.
func isSecretInput(in *Input) bool {
	return (in.Resource.Group == "" && in.Resource.Resource == "secrets") ||
		(in.Kind.Group == "" && in.Kind.Kind == "Secret")
}

// redactSecret returns a Secret as policies see it (transform.RedactSecret:
// values replaced by markers, keys kept). Whoever may create a rule in a
// namespace is not thereby allowed to read its Secrets, yet the rule's
// policy runs with the operator's access, and what it computes can reach a
// condition, a log line or a commit message. secret says the request names
// a Secret, so an object without apiVersion/kind is redacted too.
func redactSecret(obj map[string]any, secret bool) map[string]any {
	if obj == nil || transform.IsSecret(obj) {
		return transform.RedactSecret(obj)
	}
	if !secret {
		return obj
	}
	typed := make(map[string]any, len(obj)+2)
	for k, v := range obj {
		typed[k] = v
	}
	typed["apiVersion"], typed["kind"] = "v1", "Secret"
	return transform.RedactSecret(typed)
}

// item is a pair of the input document; its key is one of keyTerms.
func item(key string, v ast.Value) [2]*ast.Term {
	return [2]*ast.Term{keyTerm(key, nil), ast.NewTerm(v)}
}

// objectTerms converts object and oldObject (null when nil), sharing the
// terms of their equal subtrees (see pairTerms).
func objectTerms(obj, old map[string]any) (*ast.Term, *ast.Term, error) {
	if obj != nil && old != nil {
		ot, pt, err := pairTerms(obj, old)
		if err != nil {
			return nil, nil, fmt.Errorf("converting object and oldObject: %w", err)
		}
		return ot, pt, nil
	}
	ot, err := objectTerm(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("converting object: %w", err)
	}
	pt, err := objectTerm(old)
	if err != nil {
		return nil, nil, fmt.Errorf("converting oldObject: %w", err)
	}
	return ot, pt, nil
}

// objectTerm converts obj, or null when it is nil.
func objectTerm(obj map[string]any) (*ast.Term, error) {
	if obj == nil {
		return ast.NullTerm(), nil
	}
	return termOf(obj)
}

func userInfoValue(u *authenticationv1.UserInfo) ast.Value {
	username := u.Username
	if username == "" {
		username = UnknownUser
	}
	groups := make([]*ast.Term, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = ast.StringTerm(g)
	}
	extra := ast.NewObject()
	for k, vals := range u.Extra {
		terms := make([]*ast.Term, len(vals))
		for i, s := range vals {
			terms[i] = ast.StringTerm(s)
		}
		extra.Insert(ast.StringTerm(k), ast.ArrayTerm(terms...))
	}
	return ast.NewObject(
		item("username", ast.String(username)),
		item("uid", ast.String(u.UID)),
		item("groups", ast.NewArray(groups...)),
		item("extra", extra),
	)
}
