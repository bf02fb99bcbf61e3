package policy

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The conversion of object and oldObject to OPA values. It gives the same
// values as ast.InterfaceToValue, with two savings:
//
//   - a subtree that is equal in object and oldObject (most of an update:
//     spec, status, labels, most managedFields entries) is converted once,
//     and both documents hold the same *ast.Term. Besides the conversion
//     this saves the policies' comparisons of the two objects: ast's
//     equality returns at once on the same term;
//   - the keys Kubernetes objects share are terms made once for the
//     process (keyTerms), not per change.
//
// Terms are never modified once built (OPA copies a value before it
// changes it, e.g. for `with`), so sharing them is safe, as OPA's own
// interned terms are.

// pairTerms converts obj and old, sharing the terms of their equal
// subtrees.
func pairTerms(obj, old map[string]any) (*ast.Term, *ast.Term, error) {
	ot := new(ast.Term)
	pt, err := pairInto(obj, old, ot)
	if err != nil {
		return nil, nil, err
	}
	return ot, pt, nil
}

// pairInto sets ta to the value of a and returns the term of b: ta itself
// when b is equal to a, else a new term.
func pairInto(a, b any, ta *ast.Term) (*ast.Term, error) {
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			return pairObjects(av, bv, ta)
		}
	case []any:
		if bv, ok := b.([]any); ok {
			return pairArrays(av, bv, ta)
		}
	default:
		v, err := valueOf(a)
		if err != nil {
			return nil, err
		}
		ta.Value = v
		if scalarEqual(a, b) {
			return ta, nil
		}
		return termOf(b)
	}
	if err := fill(a, ta); err != nil {
		return nil, err
	}
	return termOf(b)
}

// pairObjects is pairInto for two objects.
func pairObjects(a, b map[string]any, ta *ast.Term) (*ast.Term, error) {
	if len(a) == 0 && len(b) == 0 {
		ta.Value = ast.InternedEmptyObjectValue
		return ta, nil
	}
	// Values, then the keys not in keyTerms: one allocation.
	vals := make([]ast.Term, 2*len(a))
	tuples := tupleBuf(len(a), &[tupleStack][2]*ast.Term{})
	// The terms of b's values under a's keys, in tuples' order; on the
	// stack for the usual small object.
	var buf [16]*ast.Term
	olds := buf[:0]
	same := len(a) == len(b)
	i := 0
	for k, av := range a {
		kt := keyTerm(k, &vals[len(a)+i])
		vt := &vals[i]
		tuples[i] = [2]*ast.Term{kt, vt}
		i++
		bv, ok := b[k]
		if !ok {
			same = false
			if err := fill(av, vt); err != nil {
				return nil, err
			}
			olds = append(olds, nil)
			continue
		}
		bt, err := pairInto(av, bv, vt)
		if err != nil {
			return nil, err
		}
		if bt != vt {
			same = false
		}
		olds = append(olds, bt)
	}
	ta.Value = ast.NewObject(tuples...)
	if same {
		return ta, nil
	}
	btuples := tupleBuf(len(b), &[tupleStack][2]*ast.Term{})[:0]
	for i, t := range tuples {
		if olds[i] != nil {
			btuples = append(btuples, [2]*ast.Term{t[0], olds[i]})
		}
	}
	for k, bv := range b {
		if _, ok := a[k]; ok {
			continue
		}
		bt, err := termOf(bv)
		if err != nil {
			return nil, err
		}
		btuples = append(btuples, [2]*ast.Term{keyTerm(k, nil), bt})
	}
	return ast.NewTerm(ast.NewObject(btuples...)), nil
}

// pairArrays is pairInto for two arrays.
func pairArrays(a, b []any, ta *ast.Term) (*ast.Term, error) {
	if len(a) == 0 && len(b) == 0 {
		ta.Value = ast.InternedEmptyArrayValue
		return ta, nil
	}
	vals := make([]ast.Term, len(a))
	elems := make([]*ast.Term, len(a))
	var belems []*ast.Term
	same := len(a) == len(b)
	for i, av := range a {
		elems[i] = &vals[i]
		if i >= len(b) {
			if err := fill(av, &vals[i]); err != nil {
				return nil, err
			}
			continue
		}
		bt, err := pairInto(av, b[i], &vals[i])
		if err != nil {
			return nil, err
		}
		if bt != &vals[i] && belems == nil {
			same = false
			belems = make([]*ast.Term, len(b))
			copy(belems, elems[:i])
		}
		if belems != nil {
			belems[i] = bt
		}
	}
	ta.Value = ast.NewArray(elems...)
	if same {
		return ta, nil
	}
	if belems == nil {
		belems = make([]*ast.Term, len(b))
		copy(belems, elems[:min(len(a), len(b))])
	}
	for i := len(a); i < len(b); i++ {
		bt, err := termOf(b[i])
		if err != nil {
			return nil, err
		}
		belems[i] = bt
	}
	return ast.NewTerm(ast.NewArray(belems...)), nil
}

// tupleStack is the size of the key/value pairs an object is built from
// without a heap allocation (ast.NewObject copies them).
const tupleStack = 16

// tupleBuf returns n pairs: buf's when they fit.
func tupleBuf(n int, buf *[tupleStack][2]*ast.Term) [][2]*ast.Term {
	if n <= tupleStack {
		return buf[:n]
	}
	return make([][2]*ast.Term, n)
}

// scalarEqual reports whether a and b are the same JSON scalar of the same
// Go type (the types a JSON or Kubernetes unstructured decoder produces).
// Anything else is not equal, which only costs a second conversion.
func scalarEqual(a, b any) bool {
	switch av := a.(type) {
	case nil:
		return b == nil
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case json.Number:
		bv, ok := b.(json.Number)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case int64:
		bv, ok := b.(int64)
		return ok && av == bv
	case int:
		bv, ok := b.(int)
		return ok && av == bv
	case float64:
		bv, ok := b.(float64)
		return ok && av == bv
	}
	return false
}

// termOf converts x to a new term.
func termOf(x any) (*ast.Term, error) {
	t := new(ast.Term)
	if err := fill(x, t); err != nil {
		return nil, err
	}
	return t, nil
}

// fill sets t to the value of x.
func fill(x any, t *ast.Term) error {
	switch xv := x.(type) {
	case map[string]any:
		if len(xv) == 0 {
			t.Value = ast.InternedEmptyObjectValue
			return nil
		}
		vals := make([]ast.Term, 2*len(xv))
		tuples := tupleBuf(len(xv), &[tupleStack][2]*ast.Term{})
		i := 0
		for k, v := range xv {
			if err := fill(v, &vals[i]); err != nil {
				return err
			}
			tuples[i] = [2]*ast.Term{keyTerm(k, &vals[len(xv)+i]), &vals[i]}
			i++
		}
		t.Value = ast.NewObject(tuples...)
	case []any:
		if len(xv) == 0 {
			t.Value = ast.InternedEmptyArrayValue
			return nil
		}
		vals := make([]ast.Term, len(xv))
		elems := make([]*ast.Term, len(xv))
		for i, v := range xv {
			if err := fill(v, &vals[i]); err != nil {
				return err
			}
			elems[i] = &vals[i]
		}
		t.Value = ast.NewArray(elems...)
	default:
		v, err := valueOf(x)
		if err != nil {
			return err
		}
		t.Value = v
	}
	return nil
}

// valueOf converts a scalar, or any other type, the way
// ast.InterfaceToValue does.
func valueOf(x any) (ast.Value, error) {
	v, err := ast.InterfaceToValue(x)
	if err != nil {
		return nil, fmt.Errorf("converting to a Rego value: %w", err)
	}
	return v, nil
}

// keyTerm is the term of an object key: a shared term for the keys of
// keyTerms, else spare (a new term when nil) set to k.
func keyTerm(k string, spare *ast.Term) *ast.Term {
	if t, ok := keyTerms[k]; ok {
		return t
	}
	if spare == nil {
		spare = new(ast.Term)
	}
	spare.Value = ast.String(k)
	return spare
}

// keyTerms are the keys most Kubernetes objects have, as terms built once.
// The set is fixed: keys from objects never enter it (a ConfigMap's data
// keys would grow it without bound).
var keyTerms = func() map[string]*ast.Term {
	keys := []string{
		// The input document's own keys (see NewDocument).
		"operation", "userInfo", "object", "oldObject", "resource", "subResource", "dryRun",
		"group", "version", "username", "groups", "extra",
		// Kubernetes objects.
		"apiVersion", "kind", "metadata", "spec", "status", "data", "stringData", "binaryData", "type",
		"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
		"deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
		"ownerReferences", "finalizers", "generateName", "controller", "blockOwnerDeletion",
		"managedFields", "manager", "operation", "time", "fieldsType", "fieldsV1", "subresource",
		"f:metadata", "f:spec", "f:status", "f:data", "f:labels", "f:annotations", "f:template",
		"f:containers", "f:image", "f:name", "f:replicas", "f:selector", "f:ports", "f:env",
		"f:resources", "f:conditions", "f:ownerReferences", "f:finalizers", "f:type", "f:status",
		"f:lastTransitionTime", "f:lastUpdateTime", "f:message", "f:reason", "f:observedGeneration",
		"f:readyReplicas", "f:availableReplicas", "f:updatedReplicas", "f:strategy",
		"f:imagePullPolicy", "f:terminationMessagePath", "f:terminationMessagePolicy",
		"f:dnsPolicy", "f:restartPolicy", "f:schedulerName", "f:securityContext",
		"f:terminationGracePeriodSeconds", "f:progressDeadlineSeconds", "f:revisionHistoryLimit",
		"f:rollingUpdate", "f:maxSurge", "f:maxUnavailable", "f:matchLabels", "f:app",
		"f:deployment.kubernetes.io/revision", "f:kubectl.kubernetes.io/last-applied-configuration",
		".", "replicas", "selector", "matchLabels", "matchExpressions", "template", "containers",
		"initContainers", "image", "imagePullPolicy", "ports", "containerPort", "protocol", "env",
		"value", "valueFrom", "resources", "limits", "requests", "cpu", "memory", "volumeMounts",
		"volumes", "mountPath", "args", "command", "terminationMessagePath",
		"terminationMessagePolicy", "dnsPolicy", "restartPolicy", "schedulerName",
		"securityContext", "terminationGracePeriodSeconds", "strategy", "rollingUpdate",
		"maxSurge", "maxUnavailable", "revisionHistoryLimit", "progressDeadlineSeconds",
		"conditions", "lastTransitionTime", "lastUpdateTime", "message", "reason",
		"observedGeneration", "readyReplicas", "availableReplicas", "updatedReplicas",
		"unavailableReplicas", "app", "serviceAccountName", "nodeSelector", "tolerations",
		"affinity", "clusterIP", "clusterIPs", "targetPort", "port", "sessionAffinity",
		"ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "loadBalancer",
		"deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration",
	}
	m := make(map[string]*ast.Term, len(keys))
	for _, k := range keys {
		m[k] = ast.InternedTerm(k)
	}
	return m
}()
