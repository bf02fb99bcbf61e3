package batch

import (
	"errors"
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

func TestBreakers_record_opensOnlyForSlowFailures(t *testing.T) {
	now := time.Unix(1000, 0)
	rule := &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"}, Generation: 3}
	tests := []struct {
		reason plugin.Reason
		open   bool
	}{
		{plugin.ReasonTimeout, true},
		{plugin.ReasonOutOfMemory, true},
		{plugin.ReasonTrap, false},
		{plugin.ReasonBadOutput, false},
		{plugin.ReasonOutputTooLarge, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			bs := breakers{}
			bs.record(rule, &moduleError{module: "m", reason: v1alpha1.ReasonSanitizerFailed, pluginReason: tt.reason, err: errors.New("boom")}, now)
			if _, open := bs.open(rule, now.Add(time.Second)); open != tt.open {
				t.Fatalf("open = %v, want %v", open, tt.open)
			}
		})
	}
}

func TestBreakers_open_closesAfterCooldownOrRuleChange(t *testing.T) {
	now := time.Unix(1000, 0)
	rule := &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r"}, Generation: 3}
	me := &moduleError{module: "m", reason: v1alpha1.ReasonSanitizerFailed, pluginReason: plugin.ReasonTimeout, err: errors.New("loop")}

	bs := breakers{}
	bs.record(rule, me, now)
	tr, open := bs.open(rule, now.Add(breakerCooldown-time.Second))
	if !open || tr.module != "m" || tr.reason != v1alpha1.ReasonSanitizerFailed {
		t.Fatalf("breaker = %+v, %v; want open for module m", tr, open)
	}
	if _, open := bs.open(rule, now.Add(breakerCooldown)); open {
		t.Fatal("breaker still open after the cooldown")
	}

	bs.record(rule, me, now)
	changed := *rule
	changed.Generation = 4
	if _, open := bs.open(&changed, now.Add(time.Second)); open {
		t.Fatal("breaker still open after the rule changed")
	}
}
