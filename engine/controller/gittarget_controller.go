package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
)

// secretRefIndex indexes GitTargets by the names of their credentials and
// signing Secrets.
const secretRefIndex = ".spec.secretRef.name"

// RemoteChecker checks that a GitTarget's remote answers with the
// credentials from its Secret (nil when the target has none); signer signs
// a commit the check writes (nil: unsigned).
type RemoteChecker interface {
	CheckRemote(ctx context.Context, target *v1alpha1.GitTarget, secretData map[string][]byte, signer gitstore.Signer) (RemoteResult, error)
}

// RemoteResult is what a successful check found.
type RemoteResult struct {
	// Head is the commit the branch points at; empty for an empty branch.
	Head string
	// BranchCreated is true when the check created the missing branch.
	BranchCreated bool
}

// CheckError is a failed check with a condition reason. Retry says whether
// the failure may pass by itself (network) rather than needing a change by
// the user.
type CheckError struct {
	// Reason is a v1alpha1 condition reason.
	Reason string
	// Message is safe to show: no credential appears in it.
	Message string
	// Retry is true for transient failures.
	Retry bool
}

// Error implements error.
func (e *CheckError) Error() string { return e.Reason + ": " + e.Message }

// GitTargetReconciler checks GitTargets: it reads the credentials Secret,
// checks the remote for real and reports the outcome in conditions, events
// and status. It checks again when the target or its Secret changes, and
// every spec.checkInterval.
type GitTargetReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server, so that the
	// operator caches only Secret metadata, never every Secret's values.
	APIReader client.Reader
	// Checker checks remotes.
	Checker RemoteChecker
	// Recorder emits events; event reasons equal condition reasons.
	Recorder events.EventRecorder
	// RetryInterval is how soon a transient failure is retried.
	RetryInterval time.Duration
	// OnChange is told when a target's spec or Secret changed (or the
	// target is gone), so that its Git writer reopens with the new
	// settings; nil ignores it.
	OnChange func(key types.NamespacedName)
}

// +kubebuilder:rbac:groups=reverser.gitops-reverser.dev,resources=gittargets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=reverser.gitops-reverser.dev,resources=gittargets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile checks one GitTarget.
func (r *GitTargetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
	target := &v1alpha1.GitTarget{}
	if err := r.Get(ctx, req.NamespacedName, target); err != nil {
		if apierrors.IsNotFound(err) && r.OnChange != nil {
			r.OnChange(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patch := client.MergeFrom(target.DeepCopy())

	o, res, secretRV := r.check(ctx, target)
	// Errors of go-git and net/http quote URLs with their user info.
	o.message = gitstore.RedactText(o.message)
	if r.OnChange != nil && (target.Status.ObservedGeneration != target.Generation || target.Status.SecretResourceVersion != secretRV) {
		r.OnChange(req.NamespacedName)
	}
	summarize(target, o, r.Recorder)
	setEncryptionCondition(target)
	target.Status.ObservedGeneration = target.Generation
	now := metav1.Now()
	target.Status.LastCheckTime = &now
	target.Status.SecretResourceVersion = secretRV
	if o.ready {
		target.Status.Head = res.Head
	}
	if err := r.Status().Patch(ctx, target, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching status of GitTarget %s: %w", req.NamespacedName, err)
	}
	logger.V(1).Info("checked remote", "ready", o.ready, "reason", o.reason)

	switch {
	case o.ready, o.stalled:
		return ctrl.Result{RequeueAfter: r.checkInterval(target)}, nil
	default:
		return ctrl.Result{RequeueAfter: r.retryInterval()}, nil
	}
}

func (r *GitTargetReconciler) check(ctx context.Context, target *v1alpha1.GitTarget) (outcome, RemoteResult, string) {
	var data map[string][]byte
	secretRV := ""
	if ref := target.Spec.SecretRef; ref != nil {
		secret := &corev1.Secret{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: target.Namespace, Name: ref.Name}, secret)
		switch {
		case apierrors.IsNotFound(err):
			return outcome{stalled: true, reason: v1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("Secret %q not found in namespace %q", ref.Name, target.Namespace)}, RemoteResult{}, ""
		case err != nil:
			return outcome{reason: v1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("reading Secret %q: %v", ref.Name, err)}, RemoteResult{}, ""
		}
		data = secret.Data
		secretRV = secret.ResourceVersion
	}
	signer, signingRV, err := loadSigner(ctx, r.APIReader, target)
	if signingRV != "" && signingRV != secretRV {
		secretRV = strings.TrimPrefix(secretRV+","+signingRV, ",")
	}
	var ce *CheckError
	if errors.As(err, &ce) {
		return outcome{stalled: !ce.Retry, reason: ce.Reason, message: ce.Message}, RemoteResult{}, secretRV
	} else if err != nil {
		return outcome{reason: v1alpha1.ReasonInvalidSigningKey, message: err.Error()}, RemoteResult{}, secretRV
	}
	var sign gitstore.Signer // stays nil, not a nil *KeySigner, without a key
	var signedBy string
	if signer != nil {
		sign, signedBy = signer, "; commits are signed with "+signer.String()
	}
	res, err := r.Checker.CheckRemote(ctx, target, data, sign)
	if err != nil {
		if errors.As(err, &ce) {
			return outcome{stalled: !ce.Retry, reason: ce.Reason, message: ce.Message}, res, secretRV
		}
		return outcome{reason: v1alpha1.ReasonRemoteUnreachable, message: err.Error()}, res, secretRV
	}
	branch := target.Spec.Branch
	if res.BranchCreated {
		return outcome{ready: true, reason: v1alpha1.ReasonBranchCreated,
			message: fmt.Sprintf("branch %q created at %s%s", branch, short(res.Head), signedBy)}, res, secretRV
	}
	msg := fmt.Sprintf("branch %q is at %s", branch, short(res.Head))
	if res.Head == "" {
		msg = fmt.Sprintf("branch %q is empty", branch)
	}
	return outcome{ready: true, reason: v1alpha1.ReasonRemoteReachable, message: msg + signedBy}, res, secretRV
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}

func (r *GitTargetReconciler) checkInterval(t *v1alpha1.GitTarget) time.Duration {
	if d := t.Spec.CheckInterval.Duration; d > 0 {
		return d
	}
	return 5 * time.Minute
}

func (r *GitTargetReconciler) retryInterval() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return 30 * time.Second
}

// SetupWithManager registers the reconciler; a change of a Secret requeues
// the GitTargets that reference it.
func (r *GitTargetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.GitTarget{}, secretRefIndex,
		func(o client.Object) []string {
			return secretNames(o.(*v1alpha1.GitTarget))
		}); err != nil {
		return fmt.Errorf("indexing GitTargets by Secret: %w", err)
	}
	err := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.GitTarget{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.targetsForSecret), builder.OnlyMetadata).
		Named("gittarget").
		Complete(r)
	if err != nil {
		return fmt.Errorf("building the GitTarget controller: %w", err)
	}
	return nil
}

func (r *GitTargetReconciler) targetsForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	list := &v1alpha1.GitTargetList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretRefIndex: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing GitTargets for Secret", "secret", client.ObjectKeyFromObject(o))
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, t := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&t)})
	}
	return out
}
