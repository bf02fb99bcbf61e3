package lifecycle

import "github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"

// metric sums the samples of a metric family (every label set) on the
// manager's /metrics endpoint; 0 when it cannot be read.
func metric(m *manager, name string) float64 {
	v, err := e2ekit.Metric(m.proc.MetricsAddr, name)
	if err != nil {
		return 0
	}
	return v
}
