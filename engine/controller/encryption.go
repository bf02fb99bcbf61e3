package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/sops"
)

// setEncryptionCondition sets the GitTarget's Encryption condition from
// spec.encryption: True/RecipientsValid when every age recipient parses,
// False/InvalidRecipient (no recipient, or a malformed one) otherwise, and
// no condition without spec.encryption. It does not touch Ready: the
// target still records everything else, and rules that encrypt write no
// Secret meanwhile (they say EncryptionFailed). Recipients are public
// keys, so the message may quote one.
func setEncryptionCondition(t *v1alpha1.GitTarget) {
	conds := t.GetConditions()
	if t.Spec.Encryption == nil {
		meta.RemoveStatusCondition(&conds, v1alpha1.EncryptionCondition)
		t.SetConditions(conds)
		return
	}
	c := metav1.Condition{Type: v1alpha1.EncryptionCondition, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonRecipientsValid, Message: "Secrets of rules with secrets: Encrypt are encrypted for these age recipients",
		ObservedGeneration: t.Generation}
	if _, err := sops.ParseRecipients(t.Spec.Encryption.Age.Recipients); err != nil {
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonInvalidRecipient
		c.Message = "spec.encryption.age.recipients: " + err.Error() + "; rules with secrets: Encrypt write no Secret until it is fixed"
	}
	meta.SetStatusCondition(&conds, c)
	t.SetConditions(conds)
}
