package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// SyncState is what a target's Git worker holds back and why.
type SyncState struct {
	// Backlog counts changes not yet committed.
	Backlog int
	// Unpushed counts local commits the remote does not have yet.
	Unpushed int
	// Reason is a v1alpha1 Synced reason when something fails, else "".
	Reason string
	// Message says what fails; no content, no credentials.
	Message string
}

// SyncedReporter keeps the Synced condition of every GitTarget in step with
// its Git worker: how many changes and commits wait, and why (a failing
// commit names the path, a failing push the remote). It runs on the
// leader, where the workers are.
type SyncedReporter struct {
	// Client reads GitTargets from the cache and patches their status.
	Client client.Client
	// State returns a target's state; false when it has no worker.
	State func(key types.NamespacedName) (SyncState, bool)
	// Interval is how often the conditions are compared; zero means 2s.
	Interval time.Duration
}

// NeedLeaderElection runs the reporter on the leader only.
func (r *SyncedReporter) NeedLeaderElection() bool { return true }

// Start compares and patches until ctx ends.
func (r *SyncedReporter) Start(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			r.report(ctx)
		}
	}
}

func (r *SyncedReporter) report(ctx context.Context) {
	list := &v1alpha1.GitTargetList{}
	if err := r.Client.List(ctx, list); err != nil {
		log.FromContext(ctx).Error(err, "listing GitTargets for their Synced condition")
		return
	}
	for i := range list.Items {
		t := &list.Items[i]
		st, ok := r.State(client.ObjectKeyFromObject(t))
		if !ok {
			continue
		}
		want := syncedCondition(st, t.Generation)
		if have := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.SyncedCondition); have != nil &&
			have.Status == want.Status && have.Reason == want.Reason && have.Message == want.Message {
			continue
		}
		patch := client.MergeFromWithOptions(t.DeepCopy(), client.MergeFromWithOptimisticLock{})
		meta.SetStatusCondition(&t.Status.Conditions, want)
		if err := r.Client.Status().Patch(ctx, t, patch); err != nil {
			// A conflict with the GitTarget controller: the next round
			// compares again.
			log.FromContext(ctx).V(1).Info("patching the Synced condition", "target", client.ObjectKeyFromObject(t).String(),
				"error", err.Error())
		}
	}
}

// syncedCondition turns a worker's state into the Synced condition.
func syncedCondition(st SyncState, generation int64) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.SyncedCondition, ObservedGeneration: generation, Status: metav1.ConditionFalse}
	waiting := fmt.Sprintf("%d change(s) not committed, %d commit(s) not pushed", st.Backlog, st.Unpushed)
	switch {
	case st.Reason != "":
		c.Reason, c.Message = st.Reason, waiting+": "+st.Message
	case st.Backlog > 0 || st.Unpushed > 0:
		c.Reason, c.Message = v1alpha1.ReasonBacklog, waiting+" (author sessions still open or the push not due yet)"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonSynced, "every recorded change is committed and pushed"
	}
	return c
}
