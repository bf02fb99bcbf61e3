package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
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
