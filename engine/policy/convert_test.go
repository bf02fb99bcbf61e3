package policy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// eagerDocument is NewDocument as it was before pairTerms: object and
// oldObject each converted on its own by ast.InterfaceToValue. The tests
// below hold the new conversion to it.
func eagerDocument(t testing.TB, in *Input) Document {
	t.Helper()
	secret := isSecretInput(in)
	view := redactSecret(in.Object, secret)
	if secret && in.Object != nil && in.OldObject != nil {
		view = transform.MarkChangedSecretValues(view, in.Object, in.OldObject)
	}
	conv := func(obj map[string]any) ast.Value {
		if obj == nil {
			return ast.NullValue
		}
		v, err := ast.InterfaceToValue(obj)
		if err != nil {
			t.Fatalf("InterfaceToValue: %v", err)
		}
		return v
	}
	name := in.Name
	if name == "" {
		name = objectName(in.Object)
	}
	if name == "" {
		name = objectName(in.OldObject)
	}
	str := func(k, v string) [2]*ast.Term { return [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)} }
	return Document{value: ast.NewObject(
		str("operation", in.Operation),
		[2]*ast.Term{ast.StringTerm("userInfo"), ast.NewTerm(userInfoValue(&in.UserInfo))},
		[2]*ast.Term{ast.StringTerm("object"), ast.NewTerm(conv(view))},
		[2]*ast.Term{ast.StringTerm("oldObject"), ast.NewTerm(conv(redactSecret(in.OldObject, secret)))},
		[2]*ast.Term{ast.StringTerm("resource"), ast.ObjectTerm(
			str("group", in.Resource.Group), str("version", in.Resource.Version), str("resource", in.Resource.Resource))},
		str("subResource", in.SubResource),
		str("namespace", in.Namespace),
		str("name", name),
		[2]*ast.Term{ast.StringTerm("dryRun"), ast.BooleanTerm(in.DryRun)},
		[2]*ast.Term{ast.StringTerm("kind"), ast.ObjectTerm(
			str("group", in.Kind.Group), str("version", in.Kind.Version), str("kind", in.Kind.Kind))},
	)}
}

// inspect is a policy that reads its input every way a policy can: whole
// objects (equality, iteration, walk, json.marshal, printing), paths
// (object.get, refs into arrays), keys, counts, built-ins that build new
// objects from it.
const inspect = `package reverser

import rego.v1

labels.input := json.marshal(input)

labels.printed := sprintf("%v", [input])

labels.yaml := yaml.marshal(input)

labels.same := sprintf("%v", [input.object == input.oldObject])

labels.sameSpec := sprintf("%v", [object.get(input, ["object", "spec"], null) == object.get(input, ["oldObject", "spec"], null)])

labels.specCompare := sprintf("%v", [[object.get(input, ["object", "spec"], null)] < [object.get(input, ["oldObject", "spec"], null)]])

labels.walk := sprintf("%v", [[p | walk(input, [p, _])]])

labels.leaves := sprintf("%v", [count([v | walk(input.object, [_, v]); not is_object(v); not is_array(v)])])

labels.keys := sprintf("%v", [[k | some k, _ in object.get(input, "object", {})]])

labels.oldKeys := sprintf("%v", [object.keys(object.get(input, "oldObject", {}) )])

labels.image := sprintf("%v", [object.get(input, ["object", "spec", "template", "spec", "containers", 0, "image"], "none")])

labels.data := sprintf("%v", [{k: v | some k, v in object.get(input, ["object", "data"], {})}])

labels.numbers := sprintf("%v", [[n | walk(input, [_, n]); is_number(n)]])

labels.union := json.marshal(object.union(object.get(input, "oldObject", {}), object.get(input, "object", {})))

labels.diff := sprintf("%v", [[k | some k, v in object.get(input, "object", {}); object.get(input, ["oldObject", k], null) != v]])

labels.patched := json.marshal(json.patch(object.get(input, "object", {}), [{"op": "add", "path": "/added", "value": 1}]))

labels.filtered := json.marshal(object.filter(object.get(input, "object", {}), ["metadata", "spec"]))

labels.leader := sprintf("%v", [object.get(input, ["object", "metadata", "annotations", "control-plane.alpha.kubernetes.io/leader"], "none")])

labels.managers := sprintf("%v", [[m | some f in object.get(input, ["object", "metadata", "managedFields"], []); m := f.manager]])

labels.after := json.marshal([input.operation, object.get(input, ["object", "metadata"], null), object.get(input, ["object", "spec"], null)])

`

// inspectWith is a policy that uses `with` on parts of the input, which
// must not change what the rest of the evaluation, or the next one, sees.
const inspectWith = `package reverser

import rego.v1

labels.with := sprintf("%v", [with_name])

labels.withDeep := sprintf("%v", [with_deep])

labels.withTop := sprintf("%v", [with_top])

labels.input := json.marshal(input)

labels.after := json.marshal(input)

shown := [input.operation, object.get(input, ["object", "metadata", "name"], null), object.get(input, ["object", "spec", "template", "spec"], null)]

with_name := x if x := shown with input.object.metadata.name as "other"

with_deep := x if x := shown with input.object.spec.template.spec as {"x": 1}

with_top := x if x := shown with input.operation as "CONNECT"
`

// equivalenceInputs are the changes the new conversion is held to the old
// one on.
func equivalenceInputs(t testing.TB) map[string]*Input {
	t.Helper()
	dep := deploymentInput(t)
	num := func(s string) json.Number { return json.Number(s) }
	secret := func(password string, label string) map[string]any {
		return map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
			"metadata": map[string]any{
				"name": "db", "namespace": "shop", "resourceVersion": "7",
				"labels":      map[string]any{"tier": label},
				"annotations": map[string]any{"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"` + password + `"}}`},
			},
			"data":       map[string]any{"password": base64.StdEncoding.EncodeToString([]byte(password)), "user": "YWRtaW4="},
			"stringData": map[string]any{"token": password},
		}
	}
	deployment := func(rv, generation json.Number, replicas any, ready any) map[string]any {
		return map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{
				"name": "web", "namespace": "shop", "resourceVersion": string(rv), "generation": generation,
				"managedFields": []any{map[string]any{"manager": "kubectl", "operation": "Update", "time": string(rv),
					"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:spec": map[string]any{"f:replicas": map[string]any{}}}}},
			},
			"spec":   map[string]any{"replicas": replicas, "template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": "nginx:1"}}}}},
			"status": map[string]any{"readyReplicas": ready, "conditions": []any{}},
		}
	}
	deployRes := metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	deployKind := metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	secretRes := metav1.GroupVersionResource{Version: "v1", Resource: "secrets"}
	secretKind := metav1.GroupVersionKind{Version: "v1", Kind: "Secret"}
	alice := authenticationv1.UserInfo{Username: "alice@example.com", UID: "u1", Groups: []string{"dev", "system:authenticated"},
		Extra: map[string]authenticationv1.ExtraValue{"scopes": {"a", "b"}}}

	return map[string]*Input{
		"fixture: kubectl edit of a Deployment": dep,
		"fixture: swapped object and oldObject": {Operation: "UPDATE", UserInfo: dep.UserInfo, Object: dep.OldObject, OldObject: dep.Object,
			Resource: dep.Resource, Kind: dep.Kind, Namespace: dep.Namespace, Name: dep.Name},
		"fixture: create": {Operation: "CREATE", UserInfo: dep.UserInfo, Object: dep.Object, Resource: dep.Resource, Kind: dep.Kind},
		"fixture: delete with nil object": {Operation: "DELETE", UserInfo: dep.UserInfo, OldObject: dep.OldObject,
			Resource: dep.Resource, Kind: dep.Kind, Namespace: dep.Namespace},
		"fixture: dry run": {Operation: "UPDATE", UserInfo: dep.UserInfo, Object: dep.Object, OldObject: dep.OldObject,
			Resource: dep.Resource, Kind: dep.Kind, Namespace: dep.Namespace, Name: dep.Name, DryRun: true},
		"same object and oldObject": {Operation: "UPDATE", UserInfo: alice, Object: dep.Object, OldObject: copyObject(t, dep.Object),
			Resource: deployRes, Kind: deployKind},
		"status-only update": {Operation: "UPDATE", UserInfo: alice,
			Object: deployment("2", num("1"), num("3"), num("3")), OldObject: deployment("1", num("1"), num("3"), num("1")),
			Resource: deployRes, Kind: deployKind, Namespace: "shop"},
		"status subresource": {Operation: "UPDATE", UserInfo: alice, SubResource: "status",
			Object: deployment("2", num("1"), num("3"), num("3")), OldObject: deployment("1", num("1"), num("3"), num("1")),
			Resource: deployRes, Kind: deployKind, Namespace: "shop"},
		"scale subresource, spec change": {Operation: "UPDATE", UserInfo: alice, SubResource: "scale",
			Object: deployment("2", num("2"), num("5"), num("3")), OldObject: deployment("1", num("1"), num("3"), num("3")),
			Resource: deployRes, Kind: deployKind, Namespace: "shop"},
		"numbers: same value, other forms": {Operation: "UPDATE", UserInfo: alice,
			// 3 as int64 (unstructured), json.Number, float64: equal in
			// Rego, yet each converted on its own.
			Object:    deployment("2", num("1"), int64(3), float64(3)),
			OldObject: deployment("2", num("1.0"), num("3"), int64(3)),
			Resource:  deployRes, Kind: deployKind},
		"numbers: big, exponent, negative, int": {Operation: "UPDATE", UserInfo: alice,
			Object: map[string]any{"kind": "Thing", "spec": map[string]any{
				"big": num("123456789012345678901234567890"), "exp": num("1e3"), "neg": num("-0.5"), "int": 7, "f": 2.5,
				"zero": num("0"), "small": int64(-1)}},
			OldObject: map[string]any{"kind": "Thing", "spec": map[string]any{
				"big": num("123456789012345678901234567890"), "exp": num("1E3"), "neg": num("-0.5"), "int": 7, "f": 2.5,
				"zero": int64(0), "small": int64(-1)}},
		},
		"floats on create": {Operation: "CREATE", UserInfo: alice,
			Object: map[string]any{"kind": "Thing", "spec": map[string]any{"f": 1234567.5, "tiny": 1e-7, "big": 1e21, "int": int64(123456789)}},
		},
		"floats on update": {Operation: "UPDATE", UserInfo: alice,
			Object:    map[string]any{"kind": "Thing", "spec": map[string]any{"f": 1234567.5, "tiny": 1e-7, "big": 1e21}},
			OldObject: map[string]any{"kind": "Thing", "spec": map[string]any{"f": 1234567.5, "tiny": 2e-7, "big": 1e21}},
		},
		"nested arrays, lengths and types change": {Operation: "UPDATE", UserInfo: alice,
			Object: map[string]any{"kind": "Thing", "spec": map[string]any{
				"matrix": []any{[]any{num("1"), num("2")}, []any{num("3")}, []any{}},
				"grow":   []any{"a", "b", "c"}, "shrink": []any{"a"}, "typed": "now a string",
				"empty": map[string]any{}, "emptyList": []any{}, "nulls": []any{nil, nil}, "flag": true,
				"strings": []string{"x", "y"}, "smap": map[string]string{"k": "v"},
				"objs": []any{map[string]any{"a": num("1")}, map[string]any{"b": []any{map[string]any{}}}},
			}},
			OldObject: map[string]any{"kind": "Thing", "spec": map[string]any{
				"matrix": []any{[]any{num("1"), num("2")}, []any{num("4")}, []any{}},
				"grow":   []any{"a"}, "shrink": []any{"a", "b"}, "typed": map[string]any{"was": "an object"},
				"empty": map[string]any{}, "emptyList": []any{}, "nulls": []any{nil}, "flag": false,
				"strings": []string{"x", "y"}, "smap": map[string]string{"k": "w"},
				"objs":    []any{map[string]any{"a": num("1")}, map[string]any{"b": []any{map[string]any{}}}},
				"removed": "gone",
			}},
		},
		"keys only in one object": {Operation: "UPDATE", UserInfo: alice,
			Object:    map[string]any{"kind": "Thing", "metadata": map[string]any{"name": "a", "labels": map[string]any{"new": "1"}}},
			OldObject: map[string]any{"kind": "Thing", "metadata": map[string]any{"name": "a", "annotations": map[string]any{"old": "1"}}, "spec": nil},
		},
		"a key removed, nothing else changed": {Operation: "UPDATE", UserInfo: alice,
			Object:    map[string]any{"kind": "Thing", "spec": map[string]any{"a": "1"}, "list": []any{"x"}},
			OldObject: map[string]any{"kind": "Thing", "spec": map[string]any{"a": "1", "b": "2"}, "list": []any{"x", "y"}},
		},
		"a key added, nothing else changed": {Operation: "UPDATE", UserInfo: alice,
			Object:    map[string]any{"kind": "Thing", "spec": map[string]any{"a": "1", "b": "2"}, "list": []any{"x", "y"}},
			OldObject: map[string]any{"kind": "Thing", "spec": map[string]any{"a": "1"}, "list": []any{"x"}},
		},
		"list": {Operation: "CREATE", UserInfo: alice,
			Object: map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{
				map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a"}, "data": map[string]any{"k": "v"}},
				map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "b"}},
			}},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		},
		"list update": {Operation: "UPDATE", UserInfo: alice,
			Object: map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{
				map[string]any{"metadata": map[string]any{"name": "a"}, "data": map[string]any{"k": "v2"}},
				map[string]any{"metadata": map[string]any{"name": "b"}},
			}},
			OldObject: map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{
				map[string]any{"metadata": map[string]any{"name": "a"}, "data": map[string]any{"k": "v"}},
				map[string]any{"metadata": map[string]any{"name": "b"}},
			}},
		},
		"secret: value changed": {Operation: "UPDATE", UserInfo: alice, Object: secret("n3w-pa55", "db"), OldObject: secret("old-pa55", "db"),
			Resource: secretRes, Kind: secretKind, Namespace: "shop", Name: "db"},
		"secret: label changed only": {Operation: "UPDATE", UserInfo: alice, Object: secret("pa55", "db2"), OldObject: secret("pa55", "db"),
			Resource: secretRes, Kind: secretKind, Namespace: "shop", Name: "db"},
		"secret: no change": {Operation: "UPDATE", UserInfo: alice, Object: secret("pa55", "db"), OldObject: secret("pa55", "db"),
			Resource: secretRes, Kind: secretKind, Namespace: "shop", Name: "db"},
		"secret: create": {Operation: "CREATE", UserInfo: alice, Object: secret("pa55", "db"), Resource: secretRes, Kind: secretKind},
		"secret: delete": {Operation: "DELETE", UserInfo: alice, OldObject: secret("pa55", "db"), Resource: secretRes, Kind: secretKind},
		"secret without apiVersion and kind": {Operation: "UPDATE", UserInfo: alice,
			Object:    map[string]any{"metadata": map[string]any{"name": "db"}, "data": map[string]any{"password": "bmV3"}},
			OldObject: map[string]any{"metadata": map[string]any{"name": "db"}, "data": map[string]any{"password": "b2xk"}},
			Resource:  secretRes, Namespace: "shop"},
		"watch event without a user": {Operation: "UPDATE", Object: dep.Object, OldObject: dep.OldObject},
		"nothing":                    {},
	}
}

// docInput is the value a Document gives a policy that does not use
// `with`.
func docInput(d Document) ast.Value {
	if d.lazy != nil {
		return d.lazy.value
	}
	return d.value
}

func TestNewDocument_sameAsEagerConversion(t *testing.T) {
	ctx := context.Background()
	policies := map[string]*Policy{
		"defaults":    compile(t, defaults(t), testOptions),
		"inspect":     compile(t, map[string]string{"inspect.rego": inspect}, testOptions),
		"inspectWith": compile(t, map[string]string{"inspect.rego": inspectWith}, testOptions),
		// Errors that depend on the objects: a conflict, and a label of
		// the wrong type.
		"failing": compile(t, map[string]string{"failing.rego": `package reverser

record := true if input.object.kind

record := false if input.object.metadata

labels.meta := input.object.metadata if input.operation == "CREATE"
`}, testOptions),
	}
	if policies["inspect"].usesWith || !policies["inspectWith"].usesWith {
		t.Fatal("usesWith does not tell the policy with `with`")
	}
	for name, in := range equivalenceInputs(t) {
		t.Run(name, func(t *testing.T) {
			// The Go objects must not change under either conversion.
			before, err := json.Marshal([]any{in.Object, in.OldObject})
			if err != nil {
				t.Fatalf("encoding input: %v", err)
			}
			newDoc := func() Document {
				d, err := NewDocument(in)
				if err != nil {
					t.Fatalf("NewDocument: %v", err)
				}
				return d
			}
			wantLazy := (in.Object == nil || in.OldObject == nil) && convertible(in.Object) && convertible(in.OldObject)
			if lazy := newDoc().lazy != nil; lazy != wantLazy {
				t.Errorf("converted on demand: %t, want %t", lazy, wantLazy)
			}
			want := eagerDocument(t, in)
			if got := docInput(newDoc()); ast.Compare(got, want.value) != 0 {
				t.Errorf("document differs from the eager conversion:\n got %v\nwant %v", got, want.value)
			}
			if got := docInput(newDoc()); got.String() != want.value.String() {
				t.Errorf("document prints differently:\n got %s\nwant %s", got, want.value)
			}
			for pname, p := range policies {
				// Twice on the same documents: an evaluation must
				// leave the document as it found it.
				got := newDoc()
				for round := range 2 {
					wd, werr := p.EvalDocument(ctx, want)
					gd, gerr := p.EvalDocument(ctx, got)
					if fmt.Sprint(werr) != fmt.Sprint(gerr) {
						t.Fatalf("%s, round %d: error %v, eager conversion's %v", pname, round, gerr, werr)
					}
					if !reflect.DeepEqual(gd, wd) {
						t.Errorf("%s, round %d: decision differs:\n got %+v\nwant %+v", pname, round, gd, wd)
					}
					if strings.HasPrefix(pname, "inspect") && (gd.Labels["input"] == "" || gd.Labels["after"] == "") {
						t.Errorf("%s: the policy saw no input: labels %v", pname, gd.Labels)
					}
				}
			}
			after, err := json.Marshal([]any{in.Object, in.OldObject})
			if err != nil {
				t.Fatalf("encoding input: %v", err)
			}
			if string(before) != string(after) {
				t.Error("NewDocument or an evaluation modified the input's objects")
			}
		})
	}
}

// TestNewDocument_lazyConcurrent evaluates one Document converted on demand
// from several goroutines (the race detector sees a shared cache).
func TestNewDocument_lazyConcurrent(t *testing.T) {
	p := compile(t, map[string]string{"inspect.rego": inspect}, testOptions)
	in := equivalenceInputs(t)["fixture: create"]
	want, err := p.EvalDocument(context.Background(), eagerDocument(t, in))
	if err != nil {
		t.Fatalf("EvalDocument: %v", err)
	}
	doc, err := NewDocument(in)
	if err != nil || doc.lazy == nil {
		t.Fatalf("NewDocument: %v, lazy %t", err, doc.lazy != nil)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			d, err := p.EvalDocument(context.Background(), doc)
			if err == nil && !reflect.DeepEqual(d, want) {
				err = fmt.Errorf("decision %+v, want %+v", d, want)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestNewDocument_unconvertible checks that an object with a value
// ast.LazyObject cannot convert is converted eagerly, with today's error
// instead of a panic during the evaluation.
func TestNewDocument_unconvertible(t *testing.T) {
	cases := map[string]any{
		"bad exponent": json.Number("1e999999999999"),
		"channel":      make(chan int),
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			in := &Input{Operation: "CREATE", Object: map[string]any{"spec": map[string]any{"x": []any{v}}}}
			if convertible(in.Object) {
				t.Fatal("convertible")
			}
			_, err := NewDocument(in)
			_, werr := ast.InterfaceToValue(in.Object)
			if err == nil || werr == nil {
				t.Fatalf("NewDocument error %v, InterfaceToValue error %v; want both", err, werr)
			}
		})
	}
}

// TestNewDocument_secretValuesHidden checks the markers a policy sees for
// a Secret's values, on the new conversion.
func TestNewDocument_secretValuesHidden(t *testing.T) {
	p := compile(t, map[string]string{"inspect.rego": inspect}, testOptions)
	in := equivalenceInputs(t)["secret: value changed"]
	d, err := p.Eval(context.Background(), in)
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	all := fmt.Sprint(d.Labels)
	for _, secret := range []string{"n3w-pa55", "old-pa55", base64.StdEncoding.EncodeToString([]byte("n3w-pa55")),
		base64.StdEncoding.EncodeToString([]byte("old-pa55"))} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret value (%d bytes) reached the policy", len(secret))
		}
	}
	var view struct {
		Object    struct{ Data map[string]string }
		OldObject struct{ Data map[string]string }
	}
	if err := json.Unmarshal([]byte(d.Labels["input"]), &view); err != nil {
		t.Fatalf("decoding the policy's view: %v", err)
	}
	data, old := view.Object.Data, view.OldObject.Data
	if data["password"] != transform.RedactedChanged || data["user"] != transform.RedactedData ||
		old["password"] != transform.RedactedData || old["user"] != transform.RedactedData {
		t.Errorf("markers: object.data %v, oldObject.data %v; want password %s in object only, %s elsewhere",
			data, old, transform.RedactedChanged, transform.RedactedData)
	}
	if d.Labels["same"] != "false" {
		t.Errorf("a changed Secret value reads as no change (same = %s)", d.Labels["same"])
	}
}
