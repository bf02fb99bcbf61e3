package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// conditioned is an object with status conditions.
type conditioned interface {
	runtime.Object
	metav1.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// outcome is what one reconcile concluded; summarize turns it into the
// Ready and Stalled conditions in one place, and emits an event when Ready
// changes. Event reasons equal condition reasons.
type outcome struct {
	ready   bool
	stalled bool
	// waitsForResources: the rule names resources the API server does
	// not serve (yet); it is resolved again when a CRD serves one.
	waitsForResources bool
	// transient: discovery failed for one of them; ask again soon.
	transient bool
	reason    string
	message   string
}

func summarize(obj conditioned, o outcome, recorder events.EventRecorder) {
	conds := obj.GetConditions()
	prev := meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	status := metav1.ConditionFalse
	if o.ready {
		status = metav1.ConditionTrue
	}
	changed := prev == nil || prev.Status != status || prev.Reason != o.reason || prev.Message != o.message
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type: v1alpha1.ReadyCondition, Status: status, Reason: o.reason, Message: o.message,
		ObservedGeneration: obj.GetGeneration(),
	})
	if o.stalled {
		meta.SetStatusCondition(&conds, metav1.Condition{
			Type: v1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: o.reason, Message: o.message,
			ObservedGeneration: obj.GetGeneration(),
		})
	} else {
		meta.RemoveStatusCondition(&conds, v1alpha1.StalledCondition)
	}
	obj.SetConditions(conds)
	if changed && recorder != nil {
		eventType := "Normal"
		if !o.ready {
			eventType = "Warning"
		}
		recorder.Eventf(obj, nil, eventType, o.reason, "Reconcile", "%s", o.message)
	}
}
