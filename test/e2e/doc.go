// Package e2e holds the end-to-end capture suite: the whole operator
// (webhook, watch, sanitizer, batcher, Git writer) against a real
// kube-apiserver with the webhook installed, users impersonated with real
// kubectl, and a real Git server.
package e2e
