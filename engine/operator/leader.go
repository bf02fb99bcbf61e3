package operator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// LeaderLabel is the label the leader sets to "true" on its own pod. The
// webhook's Service selects it, so the API server calls the replica that
// watches and holds the claims; a claim that landed on a follower would
// be lost (its author unknown).
const LeaderLabel = "gitops-reverser.io/leader"

// leaderRelabel is how often the leader sets its label again, repairing
// an edit by hand or a pod that another leader labelled.
const leaderRelabel = 30 * time.Second

// PodLabeler moves LeaderLabel to the leader's pod. Its Leader runnable
// (on the leader) labels the own pod and removes the label from every
// other pod of the namespace (a killed leader's pod keeps it until then);
// its Follower runnable (on every replica, at start) removes the label
// from the own pod, which may carry it from before a restart.
type PodLabeler struct {
	// Client patches pods.
	Client client.Client
	// Reader lists pods (uncached, so that no pod informer runs).
	Reader client.Reader
	// Pod is this replica's pod (POD_NAMESPACE and POD_NAME).
	Pod types.NamespacedName
	// Log receives label changes and errors.
	Log logr.Logger

	once sync.Once
	// cleared closes when the follower's removal is done: the leader
	// labels after it, never before (without leader election both run at
	// once).
	cleared chan struct{}
}

func (p *PodLabeler) clearedCh() chan struct{} {
	p.once.Do(func() { p.cleared = make(chan struct{}) })
	return p.cleared
}

// Leader returns the runnable that runs on the leader.
func (p *PodLabeler) Leader() manager.Runnable { return leaderLabeler{p} }

// Follower returns the runnable that runs on every replica.
func (p *PodLabeler) Follower() manager.Runnable { return followerLabeler{p} }

type leaderLabeler struct{ p *PodLabeler }

// NeedLeaderElection is true: only the leader labels itself.
func (l leaderLabeler) NeedLeaderElection() bool { return true }

// Start labels the own pod, at once and every leaderRelabel; failures are
// retried every second until the label is set.
func (l leaderLabeler) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-l.p.clearedCh():
	}
	for {
		next := leaderRelabel
		if err := l.p.TakeLabel(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.p.Log.Error(err, "labelling the leader's pod", "pod", l.p.Pod, "label", LeaderLabel)
			next = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

type followerLabeler struct{ p *PodLabeler }

// NeedLeaderElection is false: every replica starts as a follower.
func (f followerLabeler) NeedLeaderElection() bool { return false }

// Start removes the label from the own pod once; a failure is logged (the
// next leader removes it too).
func (f followerLabeler) Start(ctx context.Context) error {
	defer close(f.p.clearedCh())
	if err := f.p.setLabel(ctx, f.p.Pod.Name, false); err != nil && ctx.Err() == nil {
		f.p.Log.Error(err, "removing the leader label from the own pod", "pod", f.p.Pod)
	}
	return nil
}

// TakeLabel sets LeaderLabel on the own pod and removes it from every
// other pod in its namespace: the own label first, so that the Service
// never has no endpoint for longer than it must.
func (p *PodLabeler) TakeLabel(ctx context.Context) error {
	if err := p.setLabel(ctx, p.Pod.Name, true); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := p.Reader.List(ctx, &pods, client.InNamespace(p.Pod.Namespace), client.HasLabels{LeaderLabel}); err != nil {
		return fmt.Errorf("listing pods labelled %s: %w", LeaderLabel, err)
	}
	for _, pod := range pods.Items {
		if pod.Name == p.Pod.Name {
			continue
		}
		if err := p.setLabel(ctx, pod.Name, false); err != nil {
			return err
		}
		p.Log.Info("removed the leader label from a former leader's pod", "pod", pod.Name)
	}
	return nil
}

// setLabel sets (on) or removes LeaderLabel on the pod named name.
func (p *PodLabeler) setLabel(ctx context.Context, name string, on bool) error {
	value := "null"
	if on {
		value = `"true"`
	}
	patch := []byte(`{"metadata":{"labels":{"` + LeaderLabel + `":` + value + `}}}`)
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = p.Pod.Namespace, name
	err := p.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch))
	if apierrors.IsNotFound(err) && !on {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patching the label %s of pod %s/%s: %w", LeaderLabel, p.Pod.Namespace, name, err)
	}
	return nil
}
