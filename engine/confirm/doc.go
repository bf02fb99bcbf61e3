// Package confirm is the "what" half of capture: it pairs what the
// admission webhook claimed with what the watch shows was persisted.
//
// It receives pending changes (change.Pending, through Store.AddPending,
// which implements admission.PendingRecorder) and watch events from dynamic
// informers for exactly the resources the rule index selects. It hands on a
// change.Change for every persisted change a rule selects, to a change.Sink,
// with its author:
//
//   - CREATE: the pending creations for the object's uid (or
//     namespace/name) whose fingerprint equals the persisted object's;
//   - UPDATE: the pending updates keyed by (uid, old resourceVersion), which
//     only one write can leave; the persisted content picks among racing
//     attempts (fingerprint; replicas for the scale subresource);
//   - DELETE: the user who deleted the object, remembered when the deletion
//     only set deletionTimestamp (finalizers), else the pending deletions
//     from the last resourceVersion the watch saw of the object (the DELETED
//     event carries the deletion's own resourceVersion);
//   - an UPDATE that moves the object out of a rule's label selection is,
//     for that rule, a DELETE of the old state (change.Change.LeftSelection)
//     by the update's author.
//
// An object of an informer's initial list (created just before the
// informer started: a new namespace's, a new rule's) is the reconcile's,
// unless the webhook holds a create claim for it: then it is paired like an
// ADDED event, more strictly (Store.pairListed), and handed on as a CREATE
// by the claim's author. A change in a namespace the operator's cache has
// not heard of yet (created in the same apply) that a rule with a namespace
// selector could select waits its grace, its claims kept, and is selected
// again then.
//
// A namespace relabelled out of a ClusterWatchRule's namespace selector
// hands on such a DELETE, by change.Unknown, for each object of the
// namespace the rule selected.
//
// Informers cover what the rules need: a WatchRule's resource in its
// namespace, or cluster-wide when a ClusterWatchRule needs it; Namespaces
// while a rule selects namespaces by label.
//
// When the remaining claims disagree, the author is change.Unknown, never a
// guess. A write whose claim was lost (a change.Taint: dropped by the
// webhook, evicted from this store), or whose claim still waits in the
// webhook's queue when the grace ends, is Unknown too; taints are bounded,
// and a taint evicted before its TTL makes every decision Unknown until that
// TTL ends. When no claim is there yet, the decision waits a short grace (the
// webhook's queue is asynchronous) without blocking the informer, and events
// of one object are handed on in the order they were observed. Pending
// changes that no event confirms expire after a TTL and are counted.
package confirm
