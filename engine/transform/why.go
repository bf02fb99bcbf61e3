package transform

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// WhyAnnotation is the annotation by which a user says why they changed an
// object: its value, when a write sets or changes it, goes into the body of
// the commit that records the write. It describes the change, not the
// object, so Sanitize leaves it out of the file (docs/why.md).
const WhyAnnotation = "gitops-reverser.dev/why"

// ChangeCauseAnnotation is Kubernetes' own change reason (`kubectl
// rollout history` shows it, `kubectl --record` sets it). It is honoured
// like WhyAnnotation when that is not set, and left out of the file too.
const ChangeCauseAnnotation = "kubernetes.io/change-cause"

// Why returns the reason given with the write that turned old into obj:
// the value of WhyAnnotation, else of ChangeCauseAnnotation, when the write
// set it or changed it (old is nil for a create, or when the state before
// is not known). A reason left on the object by an earlier write is not
// this write's reason: it returns "". The text is the user's, unescaped;
// change.EscapeWhy makes it fit for a commit message.
func Why(obj, old *unstructured.Unstructured) string {
	if obj == nil {
		return ""
	}
	ann := obj.GetAnnotations()
	var before map[string]string
	if old != nil {
		before = old.GetAnnotations()
	}
	for _, k := range []string{WhyAnnotation, ChangeCauseAnnotation} {
		v, ok := ann[k]
		if !ok || v == "" {
			continue
		}
		if prev, had := before[k]; had && prev == v {
			continue
		}
		return v
	}
	return ""
}
