package controller

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

func TestSecretNames_secretNames_cases(t *testing.T) {
	ref := func(n string) *v1alpha1.LocalObjectReference { return &v1alpha1.LocalObjectReference{Name: n} }
	signing := func(n string) *v1alpha1.SigningSpec {
		return &v1alpha1.SigningSpec{SecretRef: v1alpha1.LocalObjectReference{Name: n}}
	}
	tests := []struct {
		name string
		spec v1alpha1.GitTargetSpec
		want []string
	}{
		{"none", v1alpha1.GitTargetSpec{}, nil},
		{"credentials only", v1alpha1.GitTargetSpec{SecretRef: ref("git")}, []string{"git"}},
		{"signing only", v1alpha1.GitTargetSpec{Signing: signing("sign")}, []string{"sign"}},
		{"both", v1alpha1.GitTargetSpec{SecretRef: ref("git"), Signing: signing("sign")}, []string{"git", "sign"}},
		{"same Secret", v1alpha1.GitTargetSpec{SecretRef: ref("git"), Signing: signing("git")}, []string{"git"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := secretNames(&v1alpha1.GitTarget{Spec: tt.spec})
			if !slices.Equal(got, tt.want) {
				t.Errorf("secretNames = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadSigner_loadSigner_outcomes(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	good := pem.EncodeToMemory(block)
	bad := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END OPENSSH PRIVATE KEY-----\n")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secret := func(name string, key []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: "7"},
			Data: map[string][]byte{"signing.key": key}}
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(secret("good", good), secret("bad", bad)).Build()

	tests := []struct {
		name       string
		signing    string
		wantReason string
		wantDesc   string
	}{
		{name: "no signing", wantDesc: ""},
		{name: "usable key", signing: "good", wantDesc: "SSH ssh-ed25519 key SHA256:"},
		{name: "missing Secret", signing: "absent", wantReason: v1alpha1.ReasonSecretNotFound},
		{name: "invalid key", signing: "bad", wantReason: v1alpha1.ReasonInvalidSigningKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := &v1alpha1.GitTarget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t"}}
			if tt.signing != "" {
				target.Spec.Signing = &v1alpha1.SigningSpec{SecretRef: v1alpha1.LocalObjectReference{Name: tt.signing}}
			}
			signer, _, err := loadSigner(context.Background(), reader, target)
			if tt.wantReason != "" {
				var ce *CheckError
				if !errors.As(err, &ce) || ce.Reason != tt.wantReason || ce.Retry {
					t.Fatalf("loadSigner error = %v, want a permanent %s", err, tt.wantReason)
				}
				if strings.Contains(ce.Message, "c2VjcmV0") || !strings.Contains(ce.Message, tt.signing) {
					t.Errorf("message %q must name Secret %q and hold no key material", ce.Message, tt.signing)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadSigner: %v", err)
			}
			if tt.wantDesc == "" {
				if signer != nil {
					t.Fatalf("signer = %v, want none", signer)
				}
				return
			}
			if signer == nil || !strings.HasPrefix(signer.String(), tt.wantDesc) {
				t.Fatalf("signer = %v, want %q…", signer, tt.wantDesc)
			}
		})
	}
}
