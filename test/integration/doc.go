// Package integration holds the Ginkgo suites that run the operator's
// controllers against a real kube-apiserver and etcd (test/controlplane) and
// a real Git server over HTTP and SSH (test/gitserver).
package integration
