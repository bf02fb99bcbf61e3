// Package rules holds the in-memory index of active WatchRules and
// ClusterWatchRules. The rule controller resolves each rule against the API
// server's discovery and hands the result to the Index; the admission webhook
// and the watch stage ask the Index which rules select a change. Readers never
// take a lock: every write publishes a new immutable snapshot.
package rules
