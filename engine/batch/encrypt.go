package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/sops"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// The encryption step of render, for rules with `secrets: Encrypt`.
//
// Policies and WASM modules see a Secret only redacted (transform.Sanitize,
// policy input), and that does not change here: after the sanitizers and the
// layout ran on the redacted object, the values the redaction hid are put
// back from the watch's own object (transform.RestoreSecretValues: a value
// a sanitizer removed stays removed, one it changed stays changed), the
// object is rendered to YAML and encrypted at once (engine/sops). The
// plaintext lives only in this function's locals; what leaves it, to the
// session, the journal and Git, is the encrypted file.
//
// Fail closed: when the rule has no usable recipient, or the fingerprint
// key cannot be read, the object is not written at all (its file stays as
// it was) and the rule's Ready condition says EncryptionFailed. Writing
// the redacted form instead would replace a restorable encrypted file by
// one that restores nothing, and flip back at the next success.

// encryptionModule names the encryption step in the rule's health.
const encryptionModule = "encryption"

// FingerprintKeySource gives a target the key of the plaintext HMACs of
// its encrypted files (see engine/sops.Seal); the operator keeps it in a
// Secret it creates in the GitTarget's namespace.
type FingerprintKeySource interface {
	FingerprintKey(ctx context.Context, target types.NamespacedName) ([]byte, error)
}

// encryptionError is a Secret the rule could not encrypt; it was not
// written. Its message names the cause, never a value.
type encryptionError struct{ err error }

// Error implements error.
func (e *encryptionError) Error() string { return "encryption: " + e.err.Error() }

// Unwrap returns the cause.
func (e *encryptionError) Unwrap() error { return e.err }

// sealState is a target's encryption state, on its worker only.
type sealState struct {
	key []byte
	// files holds the encrypted files this worker last wrote or read,
	// by path: the previous file to compare with while a fetch or push
	// holds the clone. Ciphertext only.
	files map[string][]byte
}

// sealer encrypts the objects of one target; nil when the target is not
// known (a unit test's render), which fails every encryption.
type sealer struct {
	b *Batcher
	t *target
}

func (b *Batcher) sealerFor(t *target) *sealer { return &sealer{b: b, t: t} }

// secretFieldsOf returns the secret field paths the rule names for obj's
// kind (secret-shaped resources); nil for a Secret or an unnamed kind.
func secretFieldsOf(r *rules.Rule, obj *unstructured.Unstructured) []string {
	if obj == nil || len(r.Spec.SecretFields) == 0 || transform.IsSecret(obj.Object) {
		return nil
	}
	gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range r.Spec.SecretFields {
		if f.APIGroup == gv.Group && f.Kind == obj.GetKind() {
			out = append(out, f.Paths...)
		}
	}
	return out
}

// encrypts reports whether render must encrypt obj for r.
func encrypts(r *rules.Rule, obj *unstructured.Unstructured, fields []string) bool {
	return r.Spec.Secrets == v1alpha1.SecretEncrypt && obj != nil && (transform.IsSecret(obj.Object) || len(fields) > 0)
}

// recipientsOf returns the rule's recipients, or else its target's.
func recipientsOf(r *rules.Rule, spec v1alpha1.GitTargetSpec) []string {
	if r.Spec.Encryption != nil && len(r.Spec.Encryption.Age.Recipients) > 0 {
		return r.Spec.Encryption.Age.Recipients
	}
	if spec.Encryption != nil {
		return spec.Encryption.Age.Recipients
	}
	return nil
}

// encryptedRegex selects a Secret's data and stringData, or the last
// component of each secret field path.
func encryptedRegex(fields []string) string {
	if len(fields) == 0 {
		return sops.DefaultEncryptedRegex
	}
	var names []string
	seen := map[string]bool{}
	for _, f := range fields {
		parts := strings.Split(strings.Trim(f, "."), ".")
		last := regexp.QuoteMeta(parts[len(parts)-1])
		if !seen[last] {
			seen[last] = true
			names = append(names, last)
		}
	}
	return "^(" + strings.Join(names, "|") + ")$"
}

// seal puts back the values the redaction hid in clean (from real, the
// watch's object) and returns the encrypted file for path: the previous
// file itself when the plaintext did not change.
func (s *sealer) seal(ctx context.Context, r *rules.Rule, path string, clean, real *unstructured.Unstructured, fields []string) ([]byte, error) {
	if s == nil || s.t == nil {
		return nil, &encryptionError{errors.New("no target to encrypt for")}
	}
	recipients := recipientsOf(r, s.t.spec)
	if _, err := sops.ParseRecipients(recipients); err != nil {
		where := "its GitTarget's spec.encryption.age.recipients"
		if r.Spec.Encryption != nil && len(r.Spec.Encryption.Age.Recipients) > 0 {
			where = "the rule's spec.encryption.age.recipients"
		}
		return nil, &encryptionError{fmt.Errorf("%s: %w", where, err)}
	}
	key, err := s.key(ctx)
	if err != nil {
		return nil, &encryptionError{err}
	}
	transform.RestoreSecretValues(clean, real, fields)
	plain, err := transform.Marshal(clean)
	if err != nil {
		return nil, &encryptionError{errors.New("rendering the object failed")}
	}
	out, _, err := sops.Seal(plain, s.prior(path), sops.Options{Recipients: recipients,
		EncryptedRegex: encryptedRegex(fields), FingerprintKey: key})
	clear(plain)
	if err != nil {
		return nil, &encryptionError{err}
	}
	s.remember(path, out)
	return out, nil
}

func (s *sealer) key(ctx context.Context) ([]byte, error) {
	if s.t.seal.key != nil {
		return s.t.seal.key, nil
	}
	if s.b.opts.FingerprintKeys == nil {
		return nil, errors.New("no fingerprint key source")
	}
	kctx, cancel := context.WithTimeout(ctx, s.b.opts.NetworkTimeout)
	defer cancel()
	k, err := s.b.opts.FingerprintKeys.FingerprintKey(kctx, s.t.key)
	if err != nil {
		return nil, fmt.Errorf("the fingerprint key: %w", err)
	}
	s.t.seal.key = k
	return k, nil
}

// prior is the file now at path as this target would commit it: in an
// author session not committed yet, else on the branch (or, while a fetch
// or push holds the clone, what this worker last wrote or read there).
func (s *sealer) prior(path string) []byte {
	t := s.t
	if t.sessions != nil {
		if ss := t.sessions.byPath[path]; ss != nil {
			if f, ok := ss.files[path]; ok {
				if f.delete {
					return nil
				}
				return f.content
			}
		}
	}
	for i := len(t.pending) - 1; i >= 0; i-- {
		if f, ok := t.pending[i].files[path]; ok {
			if f.delete {
				return nil
			}
			return f.content
		}
	}
	if t.netBusy || t.writer == nil {
		return t.seal.files[path]
	}
	content, ok, err := t.writer.ReadFile(path)
	if err != nil || !ok {
		return nil
	}
	s.remember(path, content)
	return content
}

func (s *sealer) remember(path string, content []byte) {
	if s.t.seal.files == nil {
		s.t.seal.files = map[string][]byte{}
	}
	s.t.seal.files[path] = content
}

// sopsConfig is the .sops.yaml a target with spec.encryption.sopsConfig
// keeps at its base path, so that `sops edit` of a recorded file finds
// the recipients.
func sopsConfig(key types.NamespacedName, spec v1alpha1.GitTargetSpec) []byte {
	var recipients []string
	for _, r := range spec.Encryption.Age.Recipients {
		recipients = append(recipients, strings.TrimSpace(r))
	}
	return []byte(fmt.Sprintf(`# Written by gitops-reverser from GitTarget %s (spec.encryption): sops
# encrypts files here for these age recipients.
creation_rules:
  - path_regex: \.ya?ml$
    encrypted_regex: %s
    age: %q
`, key, sops.DefaultEncryptedRegex, strings.Join(recipients, ",")))
}

// sopsConfigWrite returns the write of the target's .sops.yaml when
// spec.encryption.sopsConfig asks for one and the branch holds another
// content; added says the file is new. A reconcile commits it.
func sopsConfigWrite(t *target) (w gitstore.FileChange, added, ok bool) {
	if t.spec.Encryption == nil || !t.spec.Encryption.SopsConfig {
		return gitstore.FileChange{}, false, false
	}
	p := path.Join(basePathOf(t.spec), ".sops.yaml")
	want := sopsConfig(t.key, t.spec)
	have, exists, err := t.writer.ReadFile(p)
	if err != nil || (exists && bytes.Equal(have, want)) {
		return gitstore.FileChange{}, false, false
	}
	return gitstore.FileChange{Path: p, Content: want}, !exists, true
}
