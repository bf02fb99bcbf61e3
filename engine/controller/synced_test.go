package controller

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

func TestSyncedCondition_reasonsAndCounts(t *testing.T) {
	tests := []struct {
		name   string
		state  SyncState
		status metav1.ConditionStatus
		reason string
		says   string
	}{
		{"nothing waits", SyncState{}, metav1.ConditionTrue, v1alpha1.ReasonSynced, "committed and pushed"},
		{"open sessions", SyncState{Backlog: 7}, metav1.ConditionFalse, v1alpha1.ReasonBacklog, "7 change(s) not committed, 0 commit(s) not pushed"},
		{"push due", SyncState{Unpushed: 2}, metav1.ConditionFalse, v1alpha1.ReasonBacklog, "0 change(s) not committed, 2 commit(s) not pushed"},
		{"remote down", SyncState{Backlog: 1, Unpushed: 3, Reason: v1alpha1.ReasonPushFailed, Message: "push: 503"},
			metav1.ConditionFalse, v1alpha1.ReasonPushFailed, "1 change(s) not committed, 3 commit(s) not pushed: push: 503"},
		{"file in the way", SyncState{Backlog: 1, Reason: v1alpha1.ReasonCommitFailed, Message: `"cluster/shop/core" is a file`},
			metav1.ConditionFalse, v1alpha1.ReasonCommitFailed, `"cluster/shop/core" is a file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := syncedCondition(tt.state, 4)
			if c.Type != v1alpha1.SyncedCondition || c.Status != tt.status || c.Reason != tt.reason ||
				!strings.Contains(c.Message, tt.says) || c.ObservedGeneration != 4 {
				t.Fatalf("condition = %+v, want %s/%s saying %q", c, tt.status, tt.reason, tt.says)
			}
		})
	}
}
