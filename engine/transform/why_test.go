package transform

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func annotated(ann map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{"name": "demo", "namespace": "default"},
		"data":     map[string]interface{}{"greeting": "hello"},
	}}
	if ann != nil {
		u.SetAnnotations(ann)
	}
	return u
}

func TestWhy_onlyAReasonThisWriteGave(t *testing.T) {
	tests := []struct {
		name     string
		obj, old map[string]string
		noOld    bool
		want     string
	}{
		{name: "create with a reason", obj: map[string]string{WhyAnnotation: "new app"}, noOld: true, want: "new app"},
		{name: "update sets a reason", obj: map[string]string{WhyAnnotation: "sale"}, old: map[string]string{}, want: "sale"},
		{name: "update changes the reason", obj: map[string]string{WhyAnnotation: "b"}, old: map[string]string{WhyAnnotation: "a"}, want: "b"},
		{name: "reason left by an earlier write", obj: map[string]string{WhyAnnotation: "a"}, old: map[string]string{WhyAnnotation: "a"}, want: ""},
		{name: "change-cause honoured", obj: map[string]string{ChangeCauseAnnotation: "kubectl scale --replicas=3"}, old: nil, want: "kubectl scale --replicas=3"},
		{name: "own annotation wins", obj: map[string]string{WhyAnnotation: "mine", ChangeCauseAnnotation: "theirs"}, noOld: true, want: "mine"},
		{name: "change-cause when the why is old", obj: map[string]string{WhyAnnotation: "a", ChangeCauseAnnotation: "c"},
			old: map[string]string{WhyAnnotation: "a"}, want: "c"},
		{name: "empty value", obj: map[string]string{WhyAnnotation: ""}, noOld: true, want: ""},
		{name: "no annotations", obj: nil, noOld: true, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var old *unstructured.Unstructured
			if !tt.noOld {
				old = annotated(tt.old)
			}
			if got := Why(annotated(tt.obj), old); got != tt.want {
				t.Fatalf("Why = %q, want %q", got, tt.want)
			}
		})
	}
	if got := Why(nil, nil); got != "" {
		t.Fatalf("Why(nil, nil) = %q", got)
	}
}

func TestSanitize_reasonAnnotationsLeftOut(t *testing.T) {
	plain := annotated(nil)
	withWhy := annotated(map[string]string{WhyAnnotation: "because", ChangeCauseAnnotation: "kubectl annotate", "team": "shop"})
	got := mustMarshal(t, mustSanitize(t, withWhy, Options{}))
	for _, k := range []string{WhyAnnotation, ChangeCauseAnnotation, "because"} {
		if strings.Contains(string(got), k) {
			t.Fatalf("sanitized file holds %q:\n%s", k, got)
		}
	}
	if !strings.Contains(string(got), "team: shop") {
		t.Fatalf("other annotations must stay:\n%s", got)
	}
	onlyWhy := annotated(map[string]string{WhyAnnotation: "because"})
	if a, b := string(mustMarshal(t, mustSanitize(t, onlyWhy, Options{}))), string(mustMarshal(t, mustSanitize(t, plain, Options{}))); a != b {
		t.Fatalf("a reason alone changed the file:\n%s\nvs\n%s", a, b)
	}
	if eq, err := Equivalent(onlyWhy, plain); err != nil || !eq {
		t.Fatalf("Equivalent(reason only, plain) = %v, %v; want true", eq, err)
	}
}
