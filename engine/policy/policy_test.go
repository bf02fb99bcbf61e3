package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/policies"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCompile_defaults_compileAlone checks that every non-test file of
// policies/ compiles with the engine's settings (strict mode, v1 syntax), so
// `opa test policies/` and the engine agree on the same sources.
func TestCompile_defaults_compileAlone(t *testing.T) {
	mods := defaults(t)
	for name := range mods {
		if strings.HasSuffix(name, "_test.rego") {
			t.Errorf("defaults include test file %s", name)
		}
	}
	p := compile(t, mods, testOptions)
	if got, want := len(p.Modules()), len(mods); got != want {
		t.Errorf("policy has %d modules, want %d", got, want)
	}
	tests, err := policies.Tests()
	if err != nil {
		t.Fatalf("policies.Tests: %v", err)
	}
	if len(tests) == 0 {
		t.Error("no _test.rego files next to the defaults")
	}
}

func TestCompile_errors_locateProblem(t *testing.T) {
	cases := []struct {
		name   string
		source string
		want   []string // substrings of the error message
	}{
		{
			name:   "parse error",
			source: "package reverser\n\nignore contains \"x\" if {\n\tinput.name ==\n}\n",
			want:   []string{"user.rego:5:1: rego_parse_error"},
		},
		{
			name:   "v0 syntax",
			source: "package reverser\n\nignore[\"x\"] { input.name == \"a\" }\n",
			want:   []string{"user.rego:3:", "rego_parse_error"},
		},
		{
			name:   "unsafe variable",
			source: "package reverser\n\nignore contains x if {\n\tinput.name == y\n}\n",
			want:   []string{"user.rego:3:", "rego_unsafe_var_error", "var x is unsafe"},
		},
		{
			name:   "strict: unused local",
			source: "package reverser\n\nignore contains \"x\" if {\n\tunused := input.name\n\tinput.namespace == \"a\"\n}\n",
			want:   []string{"user.rego:4:2: rego_compile_error", "unused"},
		},
		{
			name:   "network builtin",
			source: "package reverser\n\nignore contains \"x\" if {\n\thttp.send({\"method\": \"GET\", \"url\": \"http://example.com\"})\n}\n",
			want:   []string{"user.rego:4:", "http.send"},
		},
		{
			name:   "conflicting default",
			source: "package reverser\n\ndefault record := false\n",
			want:   []string{"multiple default rules", "user.rego:3"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mods := withDefaults(t, map[string]string{"user.rego": tc.source})
			_, err := Compile(context.Background(), mods, Options{})
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %q is %T, want *CompileError", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompile_noModules_isError(t *testing.T) {
	if _, err := Compile(context.Background(), nil, Options{}); err == nil {
		t.Fatal("Compile(nil) succeeded, want an error")
	}
}

func TestPolicy_Eval_defaults(t *testing.T) {
	p := compile(t, defaults(t), testOptions)
	base := deploymentInput(t)

	cases := []struct {
		name    string
		edit    func(in *Input)
		record  bool
		reasons []string
	}{
		{
			name:   "image change by a person",
			edit:   func(*Input) {},
			record: true,
		},
		{
			name:   "unattributed change",
			edit:   func(in *Input) { in.UserInfo = authenticationv1.UserInfo{} },
			record: true,
		},
		{
			name:    "change by a kube-system controller",
			edit:    func(in *Input) { in.UserInfo.Username = "system:serviceaccount:kube-system:deployment-controller" },
			reasons: []string{"written by system user system:serviceaccount:kube-system:deployment-controller"},
		},
		{
			name: "status-only update",
			edit: func(in *Input) {
				in.Object = copyObject(t, in.OldObject)
				md := in.Object["metadata"].(map[string]any)
				md["resourceVersion"] = "48400"
				in.Object["status"].(map[string]any)["readyReplicas"] = 2
			},
			reasons: []string{"status-only update"},
		},
		{
			name: "kube-root-ca.crt",
			edit: func(in *Input) {
				in.Resource = metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}
				in.Name = "kube-root-ca.crt"
			},
			reasons: []string{"kube-root-ca.crt is published by the control plane"},
		},
		{
			name: "lease by a system user",
			edit: func(in *Input) {
				in.Resource = metav1.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
				in.UserInfo.Username = "system:node:worker-1"
			},
			reasons: []string{
				"Leases are leader-election and heartbeat records",
				"written by system user system:node:worker-1",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := *base
			in.Object = copyObject(t, base.Object)
			in.OldObject = copyObject(t, base.OldObject)
			tc.edit(&in)
			d, err := p.Eval(context.Background(), &in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			want := Decision{Record: tc.record, Reasons: tc.reasons}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("decision = %+v, want %+v", d, want)
			}
		})
	}
}

func TestPolicy_Eval_userPolicy(t *testing.T) {
	const user = `package reverser

ignore contains "CI deploys are recorded by the pipeline" if {
	input.userInfo.username == "system:serviceaccount:ci:deployer"
}

keep contains "autoscaling is part of the record" if {
	input.userInfo.username == "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
}

labels.team := input.object.metadata.labels["app.kubernetes.io/part-of"]

labels.user := input.userInfo.username
`
	p := compile(t, withDefaults(t, map[string]string{"rule.rego": user}), testOptions)
	cases := []struct {
		name string
		user string
		want Decision
	}{
		{
			name: "person",
			user: "alice@example.com",
			want: Decision{Record: true, Labels: map[string]string{"team": "shop", "user": "alice@example.com"}},
		},
		{
			name: "ignored service account",
			user: "system:serviceaccount:ci:deployer",
			want: Decision{
				Reasons: []string{"CI deploys are recorded by the pipeline"},
				Labels:  map[string]string{"team": "shop", "user": "system:serviceaccount:ci:deployer"},
			},
		},
		{
			name: "kept despite a default ignore",
			user: "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
			want: Decision{
				Record: true,
				Reasons: []string{
					"autoscaling is part of the record",
					"written by system user system:serviceaccount:kube-system:horizontal-pod-autoscaler",
				},
				Labels: map[string]string{"team": "shop", "user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler"},
			},
		},
		{
			name: "empty username is unknown",
			user: "",
			want: Decision{Record: true, Labels: map[string]string{"team": "shop", "user": UnknownUser}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := deploymentInput(t)
			in.UserInfo.Username = tc.user
			d, err := p.Eval(context.Background(), in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("decision = %+v, want %+v", d, tc.want)
			}
		})
	}
}

// TestPolicy_Eval_standalone covers policies compiled without the defaults:
// an undefined decision document means "record, no reasons, no labels".
func TestPolicy_Eval_standalone(t *testing.T) {
	cases := []struct {
		name   string
		source string
		want   Decision
	}{
		{
			name:   "says nothing",
			source: "package reverser\n\nsomething_else := 1\n",
			want:   Decision{Record: true},
		},
		{
			name:   "record false, reasons as array",
			source: "package reverser\n\nrecord := false\n\nreasons := [\"b\", \"a\", \"b\"]\n",
			want:   Decision{Record: false, Reasons: []string{"a", "b"}},
		},
		{
			name:   "another package is not read",
			source: "package other\n\nrecord := false\n",
			want:   Decision{Record: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, map[string]string{"p.rego": tc.source}, testOptions)
			d, err := p.Eval(context.Background(), deploymentInput(t))
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("decision = %+v, want %+v", d, tc.want)
			}
		})
	}
}

func TestPolicy_Eval_errors(t *testing.T) {
	cases := []struct {
		name   string
		source string
		want   string
	}{
		{
			name:   "conflicting labels",
			source: "package reverser\n\nlabels.team := \"a\"\n\nlabels.team := \"b\" if input.name == \"web\"\n",
			want:   "p.rego:5: rule data.reverser.labels.team: conflict: a complete rule produced different values",
		},
		{
			name:   "conflicting record",
			source: "package reverser\n\nrecord := false if input.name == \"web\"\n\nrecord := true if input.namespace == \"shop\"\n",
			want:   "p.rego:5: rule data.reverser.record: conflict",
		},
		{
			name:   "record of the wrong type",
			source: "package reverser\n\nrecord := \"no\"\n",
			want:   "data.reverser.record has type string, want boolean",
		},
		{
			name:   "reason of the wrong type",
			source: "package reverser\n\nreasons contains 42\n",
			want:   "data.reverser.reasons holds a value of type number, want strings",
		},
		{
			name:   "label of the wrong type",
			source: "package reverser\n\nlabels.replicas := input.object.spec.replicas\n",
			want:   "invalid decision: data.reverser.labels holds a value of type number, want strings",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, map[string]string{"p.rego": tc.source}, testOptions)
			_, err := p.Eval(context.Background(), deploymentInput(t))
			if err == nil {
				t.Fatal("Eval succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestPolicy_Eval_timeout(t *testing.T) {
	// About 10^8 steps: far beyond any timeout, little memory.
	const slow = `package reverser

record := false if {
	some i in numbers.range(1, 10000)
	some j in numbers.range(1, 10000)
	i * j == -1
}
`
	p := compile(t, map[string]string{"slow.rego": slow}, Options{Timeout: time.Millisecond})
	_, err := p.Eval(context.Background(), deploymentInput(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Eval error = %v, want one wrapping context.DeadlineExceeded", err)
	}

	// The caller's context stops a running evaluation too.
	p = compile(t, map[string]string{"slow.rego": slow}, Options{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	time.AfterFunc(5*time.Millisecond, cancel)
	if _, err := p.Eval(ctx, deploymentInput(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Eval error = %v, want one wrapping context.Canceled", err)
	}

	// A context that is already done is not evaluated at all.
	if _, err := p.Eval(ctx, deploymentInput(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Eval error = %v, want one wrapping context.Canceled", err)
	}
}

func TestPolicy_EvalDocument_zeroDocument(t *testing.T) {
	p := compile(t, defaults(t), testOptions)
	if _, err := p.EvalDocument(context.Background(), Document{}); err == nil {
		t.Fatal("EvalDocument(Document{}) succeeded, want an error")
	}
}

// TestPolicy_Eval_concurrent evaluates one prepared policy from many
// goroutines (run with -race) and checks every answer.
func TestPolicy_Eval_concurrent(t *testing.T) {
	p := compile(t, defaults(t), Options{Timeout: 10 * time.Second})
	in := deploymentInput(t)
	doc, err := NewDocument(in)
	if err != nil {
		t.Fatalf("NewDocument: %v", err)
	}
	sys := *in
	sys.UserInfo.Username = "system:kube-scheduler"
	sysDoc, err := NewDocument(&sys)
	if err != nil {
		t.Fatalf("NewDocument: %v", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				d, want := doc, true
				if (g+i)%2 == 1 {
					d, want = sysDoc, false
				}
				got, err := p.EvalDocument(context.Background(), d)
				if err != nil {
					errs <- err
					return
				}
				if got.Record != want {
					errs <- fmt.Errorf("goroutine %d call %d: record = %t, want %t", g, i, got.Record, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRevision_order_and_boundaries(t *testing.T) {
	a := Revision(map[string]string{"a.rego": "x", "b.rego": "y"})
	b := Revision(map[string]string{"b.rego": "y", "a.rego": "x"})
	if a != b {
		t.Errorf("revision depends on map order: %s != %s", a, b)
	}
	if c := Revision(map[string]string{"a.rego": "xb.rego", "": "y"}); c == a {
		t.Error("revisions of different sources are equal")
	}
	if len(a) != 64 {
		t.Errorf("revision %q is not a hex sha256", a)
	}
}
