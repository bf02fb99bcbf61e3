package batch

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/policies"
)

type staticKey []byte

func (k staticKey) FingerprintKey(context.Context, types.NamespacedName) ([]byte, error) {
	return k, nil
}

func secretChange(password string) change.Change {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata": map[string]any{"name": "db", "namespace": "shop", "resourceVersion": "7"},
		"data":     map[string]any{"password": password},
	}}
	return change.Change{Operation: v1alpha1.OperationUpdate, Resource: schema.GroupVersionResource{Version: "v1", Resource: "secrets"},
		Namespace: "shop", Name: "db", Object: obj}
}

func TestRender_encrypt(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipient := id.Recipient().String()
	b := New(Options{FingerprintKeys: staticKey("0123456789abcdef0123456789abcdef")})
	newTarget := func(recipients ...string) *target {
		spec := v1alpha1.GitTargetSpec{BasePath: "cluster"}
		if recipients != nil {
			spec.Encryption = &v1alpha1.EncryptionSpec{Age: v1alpha1.AgeEncryption{Recipients: recipients}}
		}
		return &target{key: types.NamespacedName{Namespace: "shop", Name: "history"}, spec: spec}
	}
	rule := func(h v1alpha1.SecretHandling, ruleRecipients ...string) *rules.Rule {
		r := &rules.Rule{}
		r.Spec.Secrets = h
		if ruleRecipients != nil {
			r.Spec.Encryption = &v1alpha1.RuleEncryptionSpec{Age: v1alpha1.AgeEncryption{Recipients: ruleRecipients}}
		}
		return r
	}
	const value = "aHVudGVyMg=="
	tests := []struct {
		name      string
		rule      *rules.Rule
		target    *target
		encrypted bool
		failed    bool
	}{
		{"redact", rule(v1alpha1.SecretRedact), newTarget(recipient), false, false},
		{"target's recipients", rule(v1alpha1.SecretEncrypt), newTarget(recipient), true, false},
		{"rule's recipients", rule(v1alpha1.SecretEncrypt, recipient), newTarget(), true, false},
		{"no recipient", rule(v1alpha1.SecretEncrypt), newTarget(), false, true},
		{"malformed recipient", rule(v1alpha1.SecretEncrypt), newTarget("age1oops"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f, err := render(ctx, secretChange(value), tt.rule, tt.target.spec, b.sealerFor(tt.target))
			var ee *encryptionError
			if tt.failed {
				if !errors.As(err, &ee) || f.content != nil {
					t.Fatalf("render = %q, %v; want an encryption error and nothing written", f.content, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(f.content, []byte(value)) {
				t.Fatalf("the value is in the file:\n%s", f.content)
			}
			if got := bytes.Contains(f.content, []byte("ENC[AES256_GCM")); got != tt.encrypted {
				t.Fatalf("encrypted = %v, want %v:\n%s", got, tt.encrypted, f.content)
			}
			if !tt.encrypted {
				return
			}
			again, err := render(ctx, secretChange(value), tt.rule, tt.target.spec, b.sealerFor(tt.target))
			if err != nil || !bytes.Equal(again.content, f.content) {
				t.Fatalf("an unchanged Secret rendered to another file (err %v)", err)
			}
			changed, err := render(ctx, secretChange("b3RoZXI="), tt.rule, tt.target.spec, b.sealerFor(tt.target))
			if err != nil || bytes.Equal(changed.content, f.content) {
				t.Fatalf("a changed Secret rendered to the same file (err %v)", err)
			}
		})
	}
}

func TestEncryptedRegex_fields(t *testing.T) {
	tests := []struct {
		fields []string
		want   string
	}{
		{nil, `^(data|stringData)$`},
		{[]string{"spec.password", "spec.auth.password", "spec.conn.url"}, `^(password|url)$`},
		{[]string{"spec.a.b"}, `^(b)$`},
	}
	for _, tt := range tests {
		if got := encryptedRegex(tt.fields); got != tt.want {
			t.Errorf("encryptedRegex(%v) = %q, want %q", tt.fields, got, tt.want)
		}
	}
}

func TestRedactedFor_policySeesSecretFieldsRedacted(t *testing.T) {
	defaults, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string]string{"rule.rego": `package reverser

ignore contains "the policy read the password" if input.object.spec.password == "s3cr3t-value"

ignore contains "the policy read the old password" if input.oldObject.spec.password == "old-value"
`}
	for k, v := range defaults {
		modules[k] = v
	}
	p, err := policy.Compile(context.Background(), modules, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	creds := func(password string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "DatabaseCredentials",
			"metadata": map[string]any{"name": "orders", "namespace": "shop"}, "spec": map[string]any{"password": password}}}
	}
	c := change.Change{Operation: v1alpha1.OperationUpdate, Resource: schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "databasecredentials"},
		Namespace: "shop", Name: "orders", Object: creds("s3cr3t-value"), OldObject: creds("old-value"), User: change.User{Username: "alice"}}
	named := &rules.Rule{}
	named.Spec.SecretFields = []v1alpha1.SecretFieldSelector{{APIGroup: "example.com", Kind: "DatabaseCredentials", Paths: []string{"spec.password"}}}
	tests := []struct {
		name   string
		rule   *rules.Rule
		record bool
	}{
		{"fields named", named, true},
		{"fields not named", &rules.Rule{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := redactedFor(&policyDecider{c: c}, tt.rule).decide(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if d.Record != tt.record {
				t.Fatalf("record = %v (reasons %v), want %v", d.Record, d.Reasons, tt.record)
			}
		})
	}
}
