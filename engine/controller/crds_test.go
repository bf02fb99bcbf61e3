package controller

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

func TestCRDResource_cases(t *testing.T) {
	tests := []struct {
		name string
		want string
		ok   bool
	}{
		{"widgets.example.com", "widgets.example.com", true},
		{"certificates.cert-manager.io", "certificates.cert-manager.io", true},
		{"nodot", "", false},
		{".example.com", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gr, ok := crdResource(tt.name)
			if ok != tt.ok || (ok && gr.String() != tt.want) {
				t.Fatalf("crdResource(%q) = %v, %v; want %s, %v", tt.name, gr, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWaitingRules_announce_findsWaitingRulesOfKind(t *testing.T) {
	widgets := schema.GroupResource{Group: "example.com", Resource: "widgets"}
	gadgets := schema.GroupResource{Group: "example.com", Resource: "gadgets"}
	cluster := rules.Key{Kind: rules.KindClusterWatchRule, Name: "c"}
	namespaced := rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "w"}
	other := rules.Key{Kind: rules.KindClusterWatchRule, Name: "other"}
	var w waitingRules
	w.set(cluster, []rules.Missing{{Resource: widgets}})
	w.set(namespaced, []rules.Missing{{Resource: widgets}})
	w.set(other, []rules.Missing{{Resource: gadgets}})

	now := time.Unix(1700000000, 0)
	if got := w.announce(widgets, rules.KindClusterWatchRule, now); fmt.Sprint(got) != fmt.Sprint([]rules.Key{cluster}) {
		t.Fatalf("announce = %v, want only %v", got, cluster)
	}
	if !w.announced(cluster, now.Add(time.Second)) {
		t.Error("the rule waiting for widgets is not announced")
	}
	if w.announced(other, now.Add(time.Second)) {
		t.Error("a rule waiting for another resource is announced")
	}
	if w.announced(cluster, now.Add(announceWindow+time.Second)) {
		t.Error("the announcement outlived its window")
	}
	w.set(cluster, nil)
	if w.announced(cluster, now) {
		t.Error("a rule that waits for nothing is announced")
	}
}
