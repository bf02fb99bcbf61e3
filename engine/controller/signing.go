package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
)

// loadSigner reads the signing Secret of target and parses its key. It
// returns a nil signer for a target without spec.signing, and the Secret's
// resourceVersion. Failures are *CheckError with a message that names the
// Secret and what is wrong, never the key.
func loadSigner(ctx context.Context, r client.Reader, target *v1alpha1.GitTarget) (*gitstore.KeySigner, string, error) {
	if target.Spec.Signing == nil {
		return nil, "", nil
	}
	name := target.Spec.Signing.SecretRef.Name
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: target.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil, "", &CheckError{Reason: v1alpha1.ReasonSecretNotFound,
			Message: fmt.Sprintf("signing Secret %q not found in namespace %q", name, target.Namespace)}
	case err != nil:
		return nil, "", &CheckError{Reason: v1alpha1.ReasonSecretNotFound, Retry: true,
			Message: fmt.Sprintf("reading signing Secret %q: %v", name, err)}
	}
	signer, err := gitstore.SignerFromSecret(secret.Data)
	if err != nil {
		return nil, secret.ResourceVersion, &CheckError{Reason: v1alpha1.ReasonInvalidSigningKey,
			Message: fmt.Sprintf("signing Secret %q: %v", name, err)}
	}
	return signer, secret.ResourceVersion, nil
}

// secretNames returns the Secrets target reads: credentials and signing.
func secretNames(target *v1alpha1.GitTarget) []string {
	var names []string
	if ref := target.Spec.SecretRef; ref != nil {
		names = append(names, ref.Name)
	}
	if s := target.Spec.Signing; s != nil && (len(names) == 0 || names[0] != s.SecretRef.Name) {
		names = append(names, s.SecretRef.Name)
	}
	return names
}
