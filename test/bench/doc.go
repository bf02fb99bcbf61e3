// Package bench holds `make bench-e2e`, the whole-process benchmark: the
// manager binary as its own process against the real kube-apiserver and
// Git smart-HTTP server, driven by the real kubectl. Its test file needs
// the build tag benche2e, so `make test` does not run it. Figures go to
// docs/benchmarks.md.
package bench
