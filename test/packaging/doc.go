// Package packaging tests what an operator installs and runs, not the
// engine: the Helm chart and the kustomize base are linted, rendered and
// applied with --dry-run=server to a real kube-apiserver (test/controlplane)
// with default values and with every optional part on; `make
// deploy-manifests` honours IMG; every metric the Grafana dashboard and the
// PrometheusRule alerts name is served on a running manager's /metrics; and
// the manager binary is built exactly as the Dockerfile builds it, for
// linux/amd64 and linux/arm64, and checked to be a static ELF for that
// machine.
//
// Run it with `go test -race ./test/packaging/`. It needs the pinned helm
// (`make helm`, or $HELM) and the control-plane binaries (`make
// controlplane`); `make test` builds both first.
package packaging
