// Package operator wires the stages of gitops-reverser into a
// controller-runtime manager: the controllers, the rule index and (as they
// land) the admission webhook, the watch stage and the Git writers. The
// command, the local development runner and the end-to-end tests all start
// the operator through Setup, so they run the same wiring.
package operator

import (
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gitops-reverser/gitops-reverser/engine/controller"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// Options configure the operator.
type Options struct {
	// LeaderElectionNamespace is the namespace of the leader Lease.
	LeaderElectionNamespace string
	// WorkDir holds local Git clones.
	WorkDir string
	// RetryInterval is how soon a transient failure is retried; zero
	// means 30 seconds. Tests shorten it.
	RetryInterval time.Duration
}

// Operator is the running wiring, for callers that need its parts.
type Operator struct {
	// Index is the rule index the controllers keep in step.
	Index *rules.Index
}

// Setup registers every controller and stage with the manager.
func Setup(mgr ctrl.Manager, opts Options) (*Operator, error) {
	op := &Operator{Index: rules.NewIndex()}
	if err := (&controller.GitTargetReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Checker:       controller.GitRemoteChecker{},
		Recorder:      mgr.GetEventRecorder("gitops-reverser"),
		RetryInterval: opts.RetryInterval,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the GitTarget controller: %w", err)
	}
	for _, cluster := range []bool{false, true} {
		if err := (&controller.RuleReconciler{
			Client:        mgr.GetClient(),
			Mapper:        mgr.GetRESTMapper(),
			Index:         op.Index,
			Recorder:      mgr.GetEventRecorder("gitops-reverser"),
			Cluster:       cluster,
			RetryInterval: opts.RetryInterval,
		}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the rule controller: %w", err)
		}
	}
	return op, nil
}
