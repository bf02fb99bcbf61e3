// Package operator wires the stages of gitops-reverser into a
// controller-runtime manager: the controllers and the rule index, the
// admission webhook (who), the watch stage (what), the batcher and the Git
// writers. The command, the local development runner and the end-to-end
// tests all start the operator through Setup, so they run the same wiring.
package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/batch"
	"github.com/gitops-reverser/gitops-reverser/engine/confirm"
	"github.com/gitops-reverser/gitops-reverser/engine/controller"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/policies"
)

// WebhookPath is where the capture webhook is served.
const WebhookPath = "/validate"

// The operator records whatever the rules select, so it reads every
// resource; it writes only its own kinds, their status, events and the
// webhook configuration.
// +kubebuilder:rbac:groups=*,resources=*,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// The leader labels its pod, and the self-managed webhook certificate
// lives in a Secret; both in the operator's namespace only, granted by a
// Role there (config/rbac/leader_election_role.yaml, the chart's rbac.yaml).

// Options configure the operator.
type Options struct {
	// LeaderElectionNamespace is the namespace of the leader Lease.
	LeaderElectionNamespace string
	// WorkDir holds local Git clones.
	WorkDir string
	// RetryInterval is how soon a transient failure is retried; zero
	// means 30 seconds. Tests shorten it.
	RetryInterval time.Duration
	// WebhookURL is the URL the API server calls (local runs, tests);
	// set it or WebhookService to manage the webhook configuration.
	WebhookURL string
	// WebhookService is the in-cluster Service of the webhook.
	WebhookService *admissionregistrationv1.ServiceReference
	// WebhookCABundle signs the webhook's serving certificate.
	WebhookCABundle []byte
	// WebhookCAFile holds the caBundle instead; it is read at every sync,
	// so a rotated CA is followed (admission.PrepareServingCert finds it).
	WebhookCAFile string
	// WebhookCertFile is the webhook's serving certificate (tls.crt); when
	// set, it is verified against the caBundle at every sync and by
	// WebhookCACheck, and a mismatch is reported.
	WebhookCertFile string
	// WebhookConfigurationName names the ValidatingWebhookConfiguration.
	WebhookConfigurationName string
	// WebhookInjectCAFrom hands the caBundle to cert-manager's CA
	// injector ("namespace/name" of the Certificate); see
	// admission.SyncerOptions.InjectCAFrom.
	WebhookInjectCAFrom string
	// CertRotator, when set, serves the webhook's certificate from a
	// Secret shared by all replicas and rotates it on the leader.
	CertRotator *admission.CertRotator
	// LeaderPod, when set, is this replica's pod: the leader labels it
	// with LeaderLabel, so that the webhook Service selects the leader.
	LeaderPod types.NamespacedName
	// PluginCacheDir keeps compiled WASM modules across restarts; empty
	// keeps them in memory.
	PluginCacheDir string
	// ConfirmGrace is how long a watch event waits for a late admission
	// claim; zero uses the confirm stage's default.
	ConfirmGrace time.Duration
	// ReconcileInterval is how often each Git target is fully reconciled;
	// zero uses batch.DefaultReconcileInterval.
	ReconcileInterval time.Duration
	// GitTimeout bounds every network call to a Git remote (ls-remote,
	// fetch, push); zero means 30 seconds.
	GitTimeout time.Duration
}

// Operator is the running wiring, for callers that need its parts.
type Operator struct {
	// Index is the rule index the controllers keep in step.
	Index *rules.Index

	client      client.Client
	handler     *admission.Handler
	syncer      *admission.ConfigSyncer
	watcher     *confirm.Watcher
	queueSize   int
	requests    atomic.Int64
	unavailable atomic.Bool
}

// Setup registers every controller and stage with the manager.
func Setup(mgr ctrl.Manager, opts Options) (*Operator, error) {
	log := ctrl.Log.WithName("gitops-reverser")
	op := &Operator{Index: rules.NewIndex(), client: mgr.GetClient()}
	recorder := mgr.GetEventRecorder("gitops-reverser")
	dyn, err := dynamic.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("creating a dynamic client: %w", err)
	}
	gitstore.SetTimeouts(opts.GitTimeout)
	targets := controller.TargetSource{Reader: mgr.GetAPIReader(), Writer: mgr.GetClient()}
	batcher := batch.New(batch.Options{
		Targets:        targets,
		Index:          op.Index,
		Lister:         batch.DynamicLister{Client: dyn},
		WorkDir:        opts.WorkDir,
		Log:            log.WithName("batch"),
		NetworkTimeout: opts.GitTimeout,
		// A reconcile lists after the watch's informers (set below, before
		// the manager starts anything).
		WatchSynced: func() bool { return op.watcher != nil && op.watcher.Synced() },
		// A reconcile leaves an object whose write the watch has not
		// handed on yet to that write and its author.
		WatchHanded: func(uid types.UID) (string, bool) {
			if op.watcher == nil {
				return "", false
			}
			return op.watcher.Handed(uid)
		},
		ReconcileInterval: opts.ReconcileInterval,

		// Keys the plaintext HMACs of encrypted files (docs/secrets.md).
		FingerprintKeys: targets,
	})
	if err := (&controller.GitTargetReconciler{
		OnChange:      batcher.Forget,
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Checker:       controller.GitRemoteChecker{},
		Recorder:      recorder,
		RetryInterval: opts.RetryInterval,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the GitTarget controller: %w", err)
	}
	defaults, err := policies.Defaults()
	if err != nil {
		return nil, fmt.Errorf("loading the default policies: %w", err)
	}
	registry := policy.NewRegistry(defaults, policy.Options{})
	host, err := plugin.NewHost(context.Background(), plugin.Options{CacheDir: opts.PluginCacheDir})
	if err != nil {
		return nil, fmt.Errorf("starting the WASM host: %w", err)
	}
	if err := mgr.Add(closeOnStop(func(ctx context.Context) error { return host.Close(ctx) })); err != nil {
		return nil, fmt.Errorf("adding the WASM host: %w", err)
	}
	loader := controller.PluginLoader{Fetcher: &plugin.Fetcher{Reader: mgr.GetAPIReader()}, Host: host}
	health := rules.NewHealth()
	batcher.SetHealth(health)
	healthEvents := controller.NewHealthEvents(health)
	if err := mgr.Add(healthEvents); err != nil {
		return nil, fmt.Errorf("adding the rule health events: %w", err)
	}
	// One discovery mapper for both rule controllers, reset when a CRD
	// that a rule waits for changes.
	mapper := controller.NewDiscoveryMapper(mgr.GetConfig(), mgr.GetHTTPClient())
	for _, cluster := range []bool{false, true} {
		events := healthEvents.Namespaced
		if cluster {
			events = healthEvents.Cluster
		}
		if err := (&controller.RuleReconciler{
			Modules:       loader,
			Health:        health,
			HealthEvents:  events,
			Client:        mgr.GetClient(),
			APIReader:     mgr.GetAPIReader(),
			Policies:      registry,
			Mapper:        mapper,
			Index:         op.Index,
			Recorder:      recorder,
			Cluster:       cluster,
			RetryInterval: opts.RetryInterval,
		}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the rule controller: %w", err)
		}
	}

	nsLabels := admission.NamespaceLabels(mgr.GetClient())
	batcher.SetNamespaceLabels(nsLabels)
	store := confirm.NewStore(confirm.StoreOptions{})
	handler, err := admission.NewHandler(admission.Options{
		Index: op.Index, NamespaceLabels: nsLabels, Recorder: store, Log: log.WithName("admission"),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the admission handler: %w", err)
	}
	op.handler = handler
	op.queueSize = admission.DefaultQueueSize
	mgr.GetWebhookServer().Register(WebhookPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op.requests.Add(1)
		if op.unavailable.Load() {
			// Fault injection for tests: abort the connection as an
			// unreachable webhook would.
			panic(http.ErrAbortHandler)
		}
		handler.ServeHTTP(w, r)
	}))
	if err := mgr.Add(handler); err != nil {
		return nil, fmt.Errorf("adding the admission workers: %w", err)
	}
	admission.ExportCertExpiry(opts.WebhookCertFile)
	if opts.WebhookURL != "" || opts.WebhookService != nil {
		syncer, err := admission.NewConfigSyncer(admission.SyncerOptions{
			Client: mgr.GetClient(), Index: op.Index, Name: opts.WebhookConfigurationName,
			URL: opts.WebhookURL, Service: opts.WebhookService, CABundle: opts.WebhookCABundle,
			CAFile: opts.WebhookCAFile, ServingCertFile: opts.WebhookCertFile, Recorder: recorder,
			InjectCAFrom: opts.WebhookInjectCAFrom,
			Log:          log.WithName("webhook-config"),
		})
		if err != nil {
			return nil, fmt.Errorf("creating the webhook configuration syncer: %w", err)
		}
		op.syncer = syncer
		if err := mgr.Add(syncer); err != nil {
			return nil, fmt.Errorf("adding the webhook configuration syncer: %w", err)
		}
	}
	if r := opts.CertRotator; r != nil {
		var beforeServe func(context.Context) error
		if op.syncer != nil {
			beforeServe = op.syncer.Sync
		}
		if err := mgr.Add(r); err != nil {
			return nil, fmt.Errorf("adding the webhook certificate reader: %w", err)
		}
		if err := mgr.Add(r.Leader(beforeServe)); err != nil {
			return nil, fmt.Errorf("adding the webhook certificate rotation: %w", err)
		}
	}
	if opts.LeaderPod.Name != "" {
		labeler := &PodLabeler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Pod: opts.LeaderPod, Log: log.WithName("leader-label")}
		if err := mgr.Add(labeler.Follower()); err != nil {
			return nil, fmt.Errorf("adding the leader label removal: %w", err)
		}
		if err := mgr.Add(labeler.Leader()); err != nil {
			return nil, fmt.Errorf("adding the leader label: %w", err)
		}
	}

	if err := mgr.Add(batcher); err != nil {
		return nil, fmt.Errorf("adding the batcher: %w", err)
	}
	if err := mgr.Add(&controller.SyncedReporter{Client: mgr.GetClient(), State: func(key types.NamespacedName) (controller.SyncState, bool) {
		st, ok := batcher.Status(key)
		return controller.SyncState{Backlog: st.Backlog(), Unpushed: st.Unpushed, Reason: st.Reason, Message: st.Message}, ok
	}}); err != nil {
		return nil, fmt.Errorf("adding the Synced condition reporter: %w", err)
	}
	watcher, err := confirm.NewWatcher(confirm.Options{
		Client: dyn, Index: op.Index, Store: store, Sink: batcher,
		NamespaceLabels: nsLabels, Grace: opts.ConfirmGrace, OnGap: batcher.ReconcileResources, Log: log.WithName("confirm"),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the watcher: %w", err)
	}
	op.watcher = watcher
	if err := mgr.Add(watcher); err != nil {
		return nil, fmt.Errorf("adding the watcher: %w", err)
	}
	return op, nil
}

// closeOnStop runs f when the manager stops.
type closeOnStop func(ctx context.Context) error

// Start waits for the manager to stop, then runs f.
func (f closeOnStop) Start(ctx context.Context) error {
	<-ctx.Done()
	return f(context.Background())
}

// AdmissionRequests counts the requests the webhook endpoint received.
func (op *Operator) AdmissionRequests() int64 { return op.requests.Load() }

// SetWebhookUnavailable makes the webhook endpoint abort every request (or
// serve again), as if the API server could not reach it. It is a fault
// injection for tests; the API server goes on without us (failurePolicy
// Ignore) and changes are recorded through the watch, author unknown.
func (op *Operator) SetWebhookUnavailable(unavailable bool) { op.unavailable.Store(unavailable) }

// AdmissionQueueSize is the capacity of the webhook's queue.
func (op *Operator) AdmissionQueueSize() int { return op.queueSize }

// Synced reports whether the watch runs for every selected resource and
// the webhook configuration in the cluster matches the rules.
func (op *Operator) Synced(ctx context.Context) bool {
	if !op.watcher.Synced() {
		return false
	}
	if op.syncer == nil {
		return true
	}
	want := op.syncer.Desired()
	var have admissionregistrationv1.ValidatingWebhookConfiguration
	if err := op.client.Get(ctx, client.ObjectKey{Name: want.Name}, &have); err != nil {
		return false
	}
	return len(have.Webhooks) == len(want.Webhooks) && (len(want.Webhooks) == 0 ||
		len(have.Webhooks[0].Rules) == len(want.Webhooks[0].Rules))
}

// WebhookCACheck is a readiness check: it fails while the webhook's
// serving certificate does not verify against the caBundle the managed
// configuration gets. Without a managed configuration it always passes.
func (op *Operator) WebhookCACheck(req *http.Request) error {
	if op.syncer == nil {
		return nil
	}
	if err := op.syncer.CheckServingCert(req); err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	return nil
}

// SyncWebhookConfiguration writes the webhook configuration now.
func (op *Operator) SyncWebhookConfiguration(ctx context.Context) error {
	if op.syncer == nil {
		return errors.New("the webhook configuration is not managed (no webhook URL or Service)")
	}
	if err := op.syncer.Sync(ctx); err != nil {
		return fmt.Errorf("syncing the webhook configuration: %w", err)
	}
	return nil
}
