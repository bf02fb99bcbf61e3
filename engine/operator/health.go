package operator

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// InformersCheck is a readiness check: it fails until the manager's cache
// and the watch's informers have synced once after this replica became the
// leader. A follower, which watches nothing, passes; a rule added later
// (whose informer syncs in the background) does not take the pod out of
// its Service again. Each GitTarget's remote is a signal of its own (its
// conditions and gitops_reverser_target_reachable), never readiness: one
// bad remote must not stop the webhook.
func (op *Operator) InformersCheck(mgr manager.Manager) func(*http.Request) error {
	var synced atomic.Bool
	return func(req *http.Request) error {
		if synced.Load() {
			return nil
		}
		select {
		case <-mgr.Elected():
		default:
			return nil // a follower: the leader watches
		}
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the manager's cache has not synced")
		}
		if op.watcher == nil || !op.watcher.Synced() {
			return errors.New("the watch's informers have not synced")
		}
		synced.Store(true)
		return nil
	}
}
