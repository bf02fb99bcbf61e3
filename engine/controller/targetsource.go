package controller

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing/transport"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
)

// TargetSource reads a GitTarget and the credentials of its Secret for the
// Git writer. Secrets are read straight from the API server, never cached.
type TargetSource struct {
	// Reader reads GitTargets and Secrets.
	Reader client.Reader
}

// Target implements batch.TargetSource.
func (s TargetSource) Target(ctx context.Context, key types.NamespacedName) (*v1alpha1.GitTarget, transport.AuthMethod, error) {
	t := &v1alpha1.GitTarget{}
	if err := s.Reader.Get(ctx, key, t); err != nil {
		return nil, nil, fmt.Errorf("reading GitTarget %s: %w", key, err)
	}
	var data map[string][]byte
	if ref := t.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		if err := s.Reader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: ref.Name}, secret); err != nil {
			return nil, nil, fmt.Errorf("reading the Secret of GitTarget %s: %w", key, err)
		}
		data = secret.Data
	}
	auth, err := gitstore.AuthFromSecret(t.Spec.URL, data)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials of GitTarget %s: %w", key, err)
	}
	return t, auth, nil
}
