package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
)

// TargetSource reads a GitTarget, the credentials of its Secret and its
// commit signing key for the Git writer. Secrets are read straight from the
// API server, never cached.
type TargetSource struct {
	// Reader reads GitTargets and Secrets.
	Reader client.Reader
	// Writer creates the fingerprint key Secret of a target that encrypts
	// (FingerprintKey); nil means FingerprintKey fails.
	Writer client.Writer
}

// FingerprintKeyField is the key of the fingerprint key Secret's data.
const FingerprintKeyField = "hmac.key"

// FingerprintKeySecretName names the Secret, in a GitTarget's namespace,
// with the key of the plaintext HMACs of its encrypted files.
func FingerprintKeySecretName(target string) string {
	name := target + "-sops-fingerprint"
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(target))
	return target[:253-len("-sops-fingerprint")-17] + "-" + hex.EncodeToString(sum[:8]) + "-sops-fingerprint"
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create

// FingerprintKey implements batch.FingerprintKeySource: it returns the
// target's fingerprint key from the Secret FingerprintKeySecretName(name),
// creating it (32 random bytes, owned by the GitTarget) when it is
// missing. The key lets the writer tell that an encrypted file still holds
// the object's values without keeping them (docs/secrets.md); it decrypts
// nothing. Every replica reads the same Secret, so a failover re-encrypts
// nothing.
func (s TargetSource) FingerprintKey(ctx context.Context, key types.NamespacedName) ([]byte, error) {
	ref := types.NamespacedName{Namespace: key.Namespace, Name: FingerprintKeySecretName(key.Name)}
	secret := &corev1.Secret{}
	err := s.Reader.Get(ctx, ref, secret)
	switch {
	case err == nil:
		if k := secret.Data[FingerprintKeyField]; len(k) >= 32 {
			return k, nil
		}
		return nil, fmt.Errorf("the Secret %s lacks a key %q of at least 32 bytes", ref, FingerprintKeyField)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading the fingerprint key Secret %s: %w", ref, err)
	case s.Writer == nil:
		return nil, fmt.Errorf("the fingerprint key Secret %s does not exist", ref)
	}
	t := &v1alpha1.GitTarget{}
	if err := s.Reader.Get(ctx, key, t); err != nil {
		return nil, fmt.Errorf("reading GitTarget %s: %w", key, err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating a fingerprint key: %w", err)
	}
	secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "gitops-reverser"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "GitTarget",
				Name: t.Name, UID: t.UID}}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{FingerprintKeyField: k},
	}
	if err := s.Writer.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return s.FingerprintKey(ctx, key) // another replica won the race
		}
		return nil, fmt.Errorf("creating the fingerprint key Secret %s: %w", ref, err)
	}
	return k, nil
}

// Target implements batch.TargetSource. A target whose signing key cannot
// be used fails here, so that no unsigned commit is ever written for it.
func (s TargetSource) Target(ctx context.Context, key types.NamespacedName) (*v1alpha1.GitTarget, gitstore.Credentials, error) {
	t := &v1alpha1.GitTarget{}
	if err := s.Reader.Get(ctx, key, t); err != nil {
		return nil, gitstore.Credentials{}, fmt.Errorf("reading GitTarget %s: %w", key, err)
	}
	var data map[string][]byte
	if ref := t.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		if err := s.Reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: ref.Name}, secret); err != nil {
			return nil, gitstore.Credentials{}, fmt.Errorf("reading the Secret of GitTarget %s: %w", key, err)
		}
		data = secret.Data
	}
	auth, err := gitstore.AuthFromSecret(t.Spec.URL, data)
	if err != nil {
		return nil, gitstore.Credentials{}, fmt.Errorf("credentials of GitTarget %s: %w", key, err)
	}
	creds := gitstore.Credentials{Auth: auth}
	signer, _, err := loadSigner(ctx, s.Reader, t)
	if err != nil {
		return nil, gitstore.Credentials{}, fmt.Errorf("signing key of GitTarget %s: %w", key, err)
	}
	if signer != nil {
		creds.Signer = signer
	}
	return t, creds, nil
}
