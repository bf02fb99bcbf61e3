// Package controller holds the reconcilers of the gitops-reverser API. The
// GitTarget reconciler receives GitTargets and their Secrets and hands on a
// checked remote (conditions Ready/Stalled with a reason); the rule
// reconcilers receive WatchRules and ClusterWatchRules, resolve them through
// discovery and hand the result to the rule index that the admission and
// watch stages read.
package controller
