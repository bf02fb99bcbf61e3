package controller

import (
	"strings"
	"testing"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

func TestSetEncryptionCondition_recipients(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		encryption *v1alpha1.EncryptionSpec
		want       string // "" for no condition, else Status/Reason
		message    string
	}{
		{"no encryption", nil, "", ""},
		{"valid", &v1alpha1.EncryptionSpec{Age: v1alpha1.AgeEncryption{Recipients: []string{id.Recipient().String()}}}, "True/RecipientsValid", ""},
		{"missing", &v1alpha1.EncryptionSpec{}, "False/InvalidRecipient", "no age recipient"},
		{"malformed", &v1alpha1.EncryptionSpec{Age: v1alpha1.AgeEncryption{Recipients: []string{id.Recipient().String(), "age1nope"}}},
			"False/InvalidRecipient", "age recipient 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt := &v1alpha1.GitTarget{Spec: v1alpha1.GitTargetSpec{Encryption: tt.encryption}}
			setEncryptionCondition(gt)
			c := meta.FindStatusCondition(gt.Status.Conditions, v1alpha1.EncryptionCondition)
			switch {
			case tt.want == "" && c != nil:
				t.Fatalf("condition %v without spec.encryption", c)
			case tt.want == "":
				return
			case c == nil:
				t.Fatal("no condition")
			}
			if got := string(c.Status) + "/" + c.Reason; got != tt.want || !strings.Contains(c.Message, tt.message) {
				t.Fatalf("condition %s %q, want %s with %q", got, c.Message, tt.want, tt.message)
			}
		})
	}
}
