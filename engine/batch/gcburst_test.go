package batch

import (
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestTightGC_cases: reconciles lower the collector's target while any of
// them runs and the last one restores it; a GOGC set by the operator's
// environment is left alone.
func TestTightGC_cases(t *testing.T) {
	tests := []struct {
		name       string
		gogc       string
		wantDuring int
	}{
		{name: "GOGC unset", wantDuring: reconcileGCPercent},
		{name: "GOGC set", gogc: "200", wantDuring: 77},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gogc != "" {
				t.Setenv("GOGC", tt.gogc)
			}
			prev := debug.SetGCPercent(77)
			defer debug.SetGCPercent(prev)
			first := tightGC()
			second := tightGC() // another target's reconcile
			if got := gcPercent(); got != tt.wantDuring {
				t.Fatalf("GOGC during two reconciles = %d, want %d", got, tt.wantDuring)
			}
			first()
			if got := gcPercent(); got != tt.wantDuring {
				t.Fatalf("GOGC while one reconcile still runs = %d, want %d", got, tt.wantDuring)
			}
			second()
			if got := gcPercent(); got != 77 {
				t.Fatalf("GOGC after the reconciles = %d, want 77 (restored)", got)
			}
		})
	}
}
