package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

const ignoreCI = `package reverser

ignore contains "CI" if input.userInfo.username == "system:serviceaccount:ci:deployer"
`

func TestRegistry_Get_sameRevisionCompiledOnce(t *testing.T) {
	r := NewRegistry(defaults(t), testOptions)
	t.Cleanup(func() { r.Forget("a"); r.Forget("b") })

	pa, err := r.Get("a", map[string]string{"rule.rego": ignoreCI})
	if err != nil {
		t.Fatalf("Get a: %v", err)
	}
	pb, err := r.Get("b", map[string]string{"rule.rego": ignoreCI})
	if err != nil {
		t.Fatalf("Get b: %v", err)
	}
	if pa != pb {
		t.Error("identical sources were compiled twice")
	}
	again, err := r.Get("a", map[string]string{"rule.rego": ignoreCI})
	if err != nil {
		t.Fatalf("Get a again: %v", err)
	}
	if again != pa {
		t.Error("unchanged sources were compiled again")
	}
	if got := r.Revisions(); got != 1 {
		t.Errorf("Revisions() = %d, want 1", got)
	}

	in := deploymentInput(t)
	in.UserInfo.Username = "system:serviceaccount:ci:deployer"
	d, err := pa.Eval(context.Background(), in)
	if err != nil {
		t.Fatalf("Eval: %v", err)
	}
	if d.Record {
		t.Error("the rule's own ignore rule did not apply")
	}
}

func TestRegistry_Get_revisionsAreReleased(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, r *Registry)
		want int
	}{
		{
			name: "a new revision replaces the old one",
			run: func(t *testing.T, r *Registry) {
				mustGet(t, r, "a", map[string]string{"rule.rego": ignoreCI})
				mustGet(t, r, "a", map[string]string{"rule.rego": ignoreCI + "\n# edited\n"})
			},
			want: 1,
		},
		{
			name: "a revision another rule holds stays",
			run: func(t *testing.T, r *Registry) {
				mustGet(t, r, "a", map[string]string{"rule.rego": ignoreCI})
				mustGet(t, r, "b", map[string]string{"rule.rego": ignoreCI})
				mustGet(t, r, "a", nil)
			},
			want: 2,
		},
		{
			name: "forget drops the last holder's revision",
			run: func(t *testing.T, r *Registry) {
				mustGet(t, r, "a", map[string]string{"rule.rego": ignoreCI})
				mustGet(t, r, "b", nil)
				r.Forget("a")
				r.Forget("unknown")
			},
			want: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(defaults(t), testOptions)
			tc.run(t, r)
			if got := r.Revisions(); got != tc.want {
				t.Errorf("Revisions() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRegistry_Get_compileErrorIsCached(t *testing.T) {
	r := NewRegistry(defaults(t), testOptions)
	bad := map[string]string{"configmap/shop/policy/rule.rego": "package reverser\n\nignore contains x if true\n"}
	_, err1 := r.Get("a", bad)
	_, err2 := r.Get("b", bad)
	for _, err := range []error{err1, err2} {
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *CompileError", err)
		}
		if !strings.Contains(err.Error(), "configmap/shop/policy/rule.rego:3:") {
			t.Errorf("error %q does not locate the problem", err)
		}
	}
	if got := r.Revisions(); got != 1 {
		t.Errorf("Revisions() = %d, want 1 (the failed revision, cached)", got)
	}
	// Fixing the policy replaces the failed revision.
	mustGet(t, r, "a", map[string]string{"configmap/shop/policy/rule.rego": ignoreCI})
	mustGet(t, r, "b", nil)
	if got := r.Revisions(); got != 2 {
		t.Errorf("Revisions() = %d, want 2", got)
	}
}

func TestRegistry_Get_nameClashWithDefaults(t *testing.T) {
	d := defaults(t)
	r := NewRegistry(d, testOptions)
	for name := range d {
		if _, err := r.Get("a", map[string]string{name: ignoreCI}); err == nil {
			t.Errorf("module named %q replaced a default, want an error", name)
		}
	}
}

// TestRegistry_Get_concurrent asks for the same revision from many
// goroutines (run with -race): all get the same compiled policy.
func TestRegistry_Get_concurrent(t *testing.T) {
	r := NewRegistry(defaults(t), testOptions)
	const n = 8
	got := make([]*Policy, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := "rule-" + string(rune('a'+i))
			got[i], errs[i] = r.Get(id, map[string]string{"rule.rego": ignoreCI})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Errorf("Get %d returned another compilation of the same revision", i)
		}
	}
}

func mustGet(t *testing.T, r *Registry, id string, modules map[string]string) *Policy {
	t.Helper()
	p, err := r.Get(id, modules)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return p
}
