// Package e2ekit holds the helpers the end-to-end suites share (test/e2e
// with its manager in the test process, test/e2e/lifecycle and
// test/e2e/clientauth with the manager binary as a process):
//
//   - Kubectl runs the real kubectl as an impersonated user;
//   - NewTarget creates a namespace with a bare repository on the Git
//     server, its credentials Secret, a GitTarget and a WatchRule, and
//     Target waits for the rule's Ready condition and reads what the
//     manager wrote (files, commits, authors) from the Git server;
//   - WaitWebhookCalled probes, with a server-side dry run, that the API
//     server calls the webhook for a namespace;
//   - Metric sums a metric family scraped from a /metrics endpoint;
//   - Tail and WriteFile are small file and log helpers.
//
// The helpers that assert use Ginkgo's GinkgoHelper and Gomega's Expect,
// so they are meant to be called from specs and suite nodes.
package e2ekit
