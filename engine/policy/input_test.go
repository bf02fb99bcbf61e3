package policy

import (
	"context"
	"reflect"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// echo is a policy that copies parts of its input into labels, so a test
// sees the input document as a policy sees it.
const echo = `package reverser

labels := {
	"operation": input.operation,
	"username": input.userInfo.username,
	"uid": input.userInfo.uid,
	"groups": concat(",", input.userInfo.groups),
	"extra": concat(",", [sprintf("%s=%s", [k, concat("|", v)]) | some k, v in input.userInfo.extra]),
	"resource": sprintf("%s/%s/%s", [input.resource.group, input.resource.version, input.resource.resource]),
	"kind": sprintf("%s/%s/%s", [input.kind.group, input.kind.version, input.kind.kind]),
	"subResource": input.subResource,
	"namespace": input.namespace,
	"name": input.name,
	"dryRun": sprintf("%v", [input.dryRun]),
	"object": sprintf("%v", [object.get(input, ["object", "metadata", "name"], input.object)]),
	"oldObject": sprintf("%v", [object.get(input, ["oldObject", "spec", "replicas"], input.oldObject)]),
}
`

func TestNewDocument_shape(t *testing.T) {
	p := compile(t, map[string]string{"echo.rego": echo}, testOptions)
	cases := []struct {
		name string
		in   Input
		want map[string]string
	}{
		{
			name: "admission update",
			in: Input{
				Operation: "UPDATE",
				UserInfo: authenticationv1.UserInfo{
					Username: "alice", UID: "u1", Groups: []string{"dev", "ops"},
					Extra: map[string]authenticationv1.ExtraValue{"scopes": {"a", "b"}},
				},
				Object:      map[string]any{"metadata": map[string]any{"name": "web"}},
				OldObject:   map[string]any{"spec": map[string]any{"replicas": int64(3)}},
				Resource:    metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
				SubResource: "scale",
				Namespace:   "shop",
				Name:        "web",
				DryRun:      true,
				Kind:        metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			},
			want: map[string]string{
				"operation": "UPDATE", "username": "alice", "uid": "u1", "groups": "dev,ops",
				"extra": "scopes=a|b", "resource": "apps/v1/deployments", "kind": "apps/v1/Deployment",
				"subResource": "scale", "namespace": "shop", "name": "web", "dryRun": "true",
				"object": "web", "oldObject": "3",
			},
		},
		{
			name: "watch event without admission",
			in: Input{
				Operation: "CREATE",
				Object:    map[string]any{"metadata": map[string]any{"name": "settings"}},
				Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
				Namespace: "shop",
				Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			},
			want: map[string]string{
				"operation": "CREATE", "username": UnknownUser, "uid": "", "groups": "",
				"extra": "", "resource": "/v1/configmaps", "kind": "/v1/ConfigMap",
				"subResource": "", "namespace": "shop", "name": "settings", "dryRun": "false",
				"object": "settings", "oldObject": "null",
			},
		},
		{
			name: "delete names the old object",
			in: Input{
				Operation: "DELETE",
				OldObject: map[string]any{"metadata": map[string]any{"name": "gone"}},
			},
			want: map[string]string{
				"operation": "DELETE", "username": UnknownUser, "uid": "", "groups": "",
				"extra": "", "resource": "//", "kind": "//",
				"subResource": "", "namespace": "", "name": "gone", "dryRun": "false",
				"object": "null", "oldObject": `{"metadata": {"name": "gone"}}`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Eval(context.Background(), &tc.in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(d.Labels, tc.want) {
				t.Errorf("input as the policy sees it:\n got %v\nwant %v", d.Labels, tc.want)
			}
		})
	}
}

func TestInputFromAdmission_fixture(t *testing.T) {
	in := deploymentInput(t)
	if in.Operation != "UPDATE" || in.UserInfo.Username != "alice@example.com" || in.Name != "web" ||
		in.Resource.Resource != "deployments" || in.Kind.Kind != "Deployment" || in.DryRun {
		t.Errorf("request fields not carried over: %+v", in)
	}
	spec, _ := in.Object["spec"].(map[string]any)
	if got := spec["replicas"]; got == nil || got.(interface{ String() string }).String() != "3" {
		t.Errorf("object.spec.replicas = %#v, want the number 3", got)
	}
	if in.OldObject == nil {
		t.Error("oldObject not decoded")
	}
}

func TestInputFromAdmission_errors(t *testing.T) {
	dry := true
	cases := []struct {
		name    string
		req     *admissionv1.AdmissionRequest
		wantErr bool
		check   func(t *testing.T, in Input)
	}{
		{name: "nil request", req: nil, wantErr: true},
		{
			name:    "object is not JSON",
			req:     &admissionv1.AdmissionRequest{Object: runtime.RawExtension{Raw: []byte("{not json")}},
			wantErr: true,
		},
		{
			name:    "object is an array",
			req:     &admissionv1.AdmissionRequest{Object: runtime.RawExtension{Raw: []byte("[1]")}},
			wantErr: true,
		},
		{
			name: "delete without object, dry run",
			req: &admissionv1.AdmissionRequest{
				Operation: admissionv1.Delete,
				OldObject: runtime.RawExtension{Raw: []byte(`{"metadata":{"name":"x"}}`)},
				Object:    runtime.RawExtension{Raw: []byte("null")},
				DryRun:    &dry,
			},
			check: func(t *testing.T, in Input) {
				if in.Object != nil || in.OldObject == nil || !in.DryRun {
					t.Errorf("got %+v", in)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := InputFromAdmission(tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %t", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, in)
			}
		})
	}
}
