package admission

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

const (
	// DefaultConfigurationName names the ValidatingWebhookConfiguration.
	DefaultConfigurationName = "gitops-reverser"
	// WebhookName is the name of the one webhook in the configuration.
	WebhookName = "capture.reverser.gitops-reverser.dev"
	// DefaultResyncInterval is how often the configuration is rewritten
	// when nothing changed, to repair edits made by hand.
	DefaultResyncInterval = 5 * time.Minute
	// retryInterval is the wait after a failed sync.
	retryInterval = 5 * time.Second
	// certCheckInterval is how often the serving certificate and the CA
	// file are read for a change (cert-manager rotates both).
	certCheckInterval = 30 * time.Second
	// InjectCAAnnotation asks cert-manager's CA injector to write a
	// Certificate's CA into the configuration's caBundle.
	InjectCAAnnotation = "cert-manager.io/inject-ca-from"
	// ReasonCAMismatch is the reason of the Warning event on the
	// configuration when its caBundle does not sign the serving
	// certificate.
	ReasonCAMismatch = "WebhookCAMismatch"
)

// SyncerOptions configure a ConfigSyncer.
type SyncerOptions struct {
	// Client writes the ValidatingWebhookConfiguration.
	Client client.Client
	// Index supplies the resources the rules select.
	Index *rules.Index
	// Name of the configuration; DefaultConfigurationName when empty.
	Name string
	// URL of the webhook (local runs and tests); set either URL or
	// Service.
	URL string
	// Service of the webhook in the cluster; its Path defaults to Path.
	Service *admissionregistrationv1.ServiceReference
	// CABundle signs the webhook's serving certificate.
	CABundle []byte
	// CAFile, when set, holds the caBundle; it is read at every sync, so a
	// rotated CA is followed, and wins over CABundle.
	CAFile string
	// ServingCertFile is the webhook's serving certificate (tls.crt in the
	// cert dir, which controller-runtime reloads when it changes). When
	// set, every sync verifies it against the caBundle it writes; a
	// mismatch is logged, counted in gitops_reverser_webhook_ca_mismatch,
	// reported as a Warning event on the configuration and fails
	// CheckServingCert.
	ServingCertFile string
	// InjectCAFrom, "namespace/name" of a cert-manager Certificate, hands
	// the caBundle to cert-manager's CA injector: the configuration gets
	// the cert-manager.io/inject-ca-from annotation, and once it holds a
	// caBundle the syncer keeps it (two writers would flap while the
	// mounted Secret lags behind). The CA file still seeds a new
	// configuration and is what the serving certificate is verified with.
	InjectCAFrom string
	// Recorder emits the mismatch event; nil emits none.
	Recorder events.EventRecorder
	// ResyncInterval rewrites the configuration when nothing changed;
	// DefaultResyncInterval when 0.
	ResyncInterval time.Duration
	// Log receives sync errors.
	Log logr.Logger
}

// ConfigSyncer keeps the ValidatingWebhookConfiguration in step with the
// rule index: one webhook, one rule per selected resource (the resource and
// its scale subresource, never status, which controllers write constantly),
// failurePolicy Ignore so that the webhook can never block the API server.
// With no selected resource the configuration stays, with no webhook in it,
// so the API server calls nothing.
//
// It runs on the leader only (NeedLeaderElection true): the replicas would
// otherwise write the same object concurrently.
type ConfigSyncer struct {
	opts SyncerOptions
	// reported is true while a mismatch has been reported by an event.
	reported atomic.Bool
	mu       sync.Mutex
	// seen is the CA bundle and serving certificate the last sync read.
	seen []byte
}

// NewConfigSyncer returns a ConfigSyncer; it fails unless Client, Index and
// exactly one of URL and Service are set.
func NewConfigSyncer(opts SyncerOptions) (*ConfigSyncer, error) {
	if opts.Client == nil || opts.Index == nil {
		return nil, errors.New("webhook configuration syncer: Client and Index are required")
	}
	if (opts.URL == "") == (opts.Service == nil) {
		return nil, errors.New("webhook configuration syncer: set exactly one of URL and Service")
	}
	if opts.Name == "" {
		opts.Name = DefaultConfigurationName
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	return &ConfigSyncer{opts: opts}, nil
}

// NeedLeaderElection is true: only the leader writes the configuration.
func (s *ConfigSyncer) NeedLeaderElection() bool { return true }

// Start syncs at once, after every change of the index, every
// ResyncInterval, and when the CA file or the serving certificate changed
// (checked every 30 seconds), until ctx ends. A failed sync is retried;
// Start returns only when ctx ends.
func (s *ConfigSyncer) Start(ctx context.Context) error {
	changed := s.opts.Index.Subscribe()
	timer := time.NewTimer(0)
	defer timer.Stop()
	certCheck := time.NewTicker(certCheckInterval)
	defer certCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-timer.C:
		case <-certCheck.C:
			if !s.filesChanged() {
				continue
			}
		}
		next := s.opts.ResyncInterval
		if err := s.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.opts.Log.Error(err, "syncing the webhook configuration", "name", s.opts.Name)
			next = retryInterval
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// Sync writes the configuration for the index's current resources, if it
// differs from what the cluster holds, and verifies the serving
// certificate against the caBundle it writes. A CA file that cannot be
// read fails the sync (a configuration without its caBundle would make
// every call fail); a mismatch is reported, and the configuration written
// all the same, since the watch still records every change (as unknown).
func (s *ConfigSyncer) Sync(ctx context.Context) error {
	bundle, err := s.caBundle()
	if err != nil {
		return err
	}
	mismatch := s.verify(bundle)
	s.remember(bundle)
	want := s.desired(bundle)
	var have admissionregistrationv1.ValidatingWebhookConfiguration
	err = s.opts.Client.Get(ctx, client.ObjectKey{Name: s.opts.Name}, &have)
	switch {
	case apierrors.IsNotFound(err):
		if err := s.opts.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("creating ValidatingWebhookConfiguration %s: %w", s.opts.Name, err)
		}
		s.report(want, mismatch)
		return nil
	case err != nil:
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", s.opts.Name, err)
	}
	if s.opts.InjectCAFrom != "" && len(have.Webhooks) > 0 && len(have.Webhooks[0].ClientConfig.CABundle) > 0 {
		for i := range want.Webhooks {
			want.Webhooks[i].ClientConfig.CABundle = have.Webhooks[0].ClientConfig.CABundle
		}
	}
	if !equality.Semantic.DeepEqual(have.Webhooks, want.Webhooks) || have.Annotations[InjectCAAnnotation] != want.Annotations[InjectCAAnnotation] {
		have.Webhooks = want.Webhooks
		if v, ok := want.Annotations[InjectCAAnnotation]; ok {
			if have.Annotations == nil {
				have.Annotations = map[string]string{}
			}
			have.Annotations[InjectCAAnnotation] = v
		} else {
			delete(have.Annotations, InjectCAAnnotation)
		}
		if err := s.opts.Client.Update(ctx, &have); err != nil {
			return fmt.Errorf("updating ValidatingWebhookConfiguration %s: %w", s.opts.Name, err)
		}
	}
	s.report(&have, mismatch)
	return nil
}

// report logs a mismatch at every sync and emits a Warning event on the
// configuration when a mismatch begins.
func (s *ConfigSyncer) report(cfg *admissionregistrationv1.ValidatingWebhookConfiguration, mismatch error) {
	if mismatch == nil {
		s.reported.Store(false)
		return
	}
	s.opts.Log.Error(mismatch, "the webhook's serving certificate does not match the caBundle of its configuration: the API server cannot call the webhook, changes are recorded with author unknown",
		"name", s.opts.Name, "certFile", s.opts.ServingCertFile, "caFile", s.opts.CAFile)
	if s.opts.Recorder != nil && !s.reported.Swap(true) {
		s.opts.Recorder.Eventf(cfg, nil, corev1.EventTypeWarning, ReasonCAMismatch, "Verify",
			"the webhook's serving certificate does not verify against this configuration's caBundle: %v", mismatch)
	}
}

// caBundle is the caBundle to write: CAFile's content when set, else
// CABundle.
func (s *ConfigSyncer) caBundle() ([]byte, error) {
	if s.opts.CAFile == "" {
		return s.opts.CABundle, nil
	}
	b, err := os.ReadFile(s.opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook CA file: %w", err)
	}
	return b, nil
}

// verify checks the serving certificate against bundle for the host the
// API server calls and sets gitops_reverser_webhook_ca_mismatch; nil when
// no ServingCertFile is configured.
func (s *ConfigSyncer) verify(bundle []byte) error {
	if s.opts.ServingCertFile == "" {
		return nil
	}
	certPEM, err := os.ReadFile(s.opts.ServingCertFile)
	if err == nil {
		err = VerifyServingCert(certPEM, bundle, s.host())
	}
	if err != nil {
		caMismatch.Set(1)
		return fmt.Errorf("verifying %s: %w", s.opts.ServingCertFile, err)
	}
	caMismatch.Set(0)
	return nil
}

// remember keeps what this sync read, for filesChanged.
func (s *ConfigSyncer) remember(bundle []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = s.files(bundle)
}

// files is the CA bundle and the serving certificate, as one value.
func (s *ConfigSyncer) files(bundle []byte) []byte {
	var certPEM []byte
	if s.opts.ServingCertFile != "" {
		certPEM, _ = os.ReadFile(s.opts.ServingCertFile)
	}
	return append(append(append([]byte{}, bundle...), 0), certPEM...)
}

// filesChanged reports whether the CA bundle or the serving certificate
// differ from what the last sync read.
func (s *ConfigSyncer) filesChanged() bool {
	if s.opts.ServingCertFile == "" && s.opts.CAFile == "" {
		return false
	}
	bundle, err := s.caBundle()
	if err != nil {
		return true // the sync reports it
	}
	now := s.files(bundle)
	s.mu.Lock()
	defer s.mu.Unlock()
	return !bytes.Equal(now, s.seen)
}

// CheckServingCert is a readiness check (controller-runtime's
// healthz.Checker): it fails while the serving certificate does not verify
// against the caBundle the configuration gets, since the API server cannot
// call this webhook then. It reads the files itself, so it works on every
// replica, not only on the leader that writes the configuration.
func (s *ConfigSyncer) CheckServingCert(_ *http.Request) error {
	bundle, err := s.caBundle()
	if err != nil {
		return err
	}
	return s.verify(bundle)
}

// host is the name the API server checks the serving certificate
// against.
func (s *ConfigSyncer) host() string { return WebhookHost(s.opts.URL, s.opts.Service) }

// WebhookHost is the name the API server checks the webhook's serving
// certificate against: the URL's host (without port), or the Service's
// DNS name (name.namespace.svc); "" when neither is set.
func WebhookHost(webhookURL string, svc *admissionregistrationv1.ServiceReference) string {
	if svc != nil {
		return svc.Name + "." + svc.Namespace + ".svc"
	}
	u, err := url.Parse(webhookURL)
	if err != nil || webhookURL == "" {
		return ""
	}
	return u.Hostname()
}

// Desired returns the configuration for the index's current resources.
// Every field the API server would default is set, so that an unchanged
// configuration compares equal and is not rewritten.
func (s *ConfigSyncer) Desired() *admissionregistrationv1.ValidatingWebhookConfiguration {
	bundle, err := s.caBundle()
	if err != nil {
		bundle = s.opts.CABundle
	}
	return s.desired(bundle)
}

func (s *ConfigSyncer) desired(bundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: s.opts.Name},
	}
	if s.opts.InjectCAFrom != "" {
		cfg.Annotations = map[string]string{InjectCAAnnotation: s.opts.InjectCAFrom}
	}
	ruleList := webhookRules(s.opts.Index.Resources())
	if len(ruleList) == 0 {
		return cfg
	}
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: bundle}
	if s.opts.URL != "" {
		cc.URL = ptr.To(s.opts.URL)
	} else {
		svc := *s.opts.Service
		if svc.Path == nil {
			svc.Path = ptr.To(Path)
		}
		if svc.Port == nil {
			svc.Port = ptr.To[int32](443)
		}
		cc.Service = &svc
	}
	cfg.Webhooks = []admissionregistrationv1.ValidatingWebhook{{
		Name:                    WebhookName,
		ClientConfig:            cc,
		Rules:                   ruleList,
		FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector:       &metav1.LabelSelector{},
		ObjectSelector:          &metav1.LabelSelector{},
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](2),
		AdmissionReviewVersions: []string{"v1"},
	}}
	return cfg
}

// webhookRules is one rule per group/resource (versions "*", so the
// versions rules name do not matter), ordered by group and resource.
func webhookRules(uses map[schema.GroupVersionResource]rules.ResourceUse) []admissionregistrationv1.RuleWithOperations {
	ops := map[schema.GroupResource]map[v1alpha1.Operation]bool{}
	for res, use := range uses {
		gr := res.GroupResource()
		if ops[gr] == nil {
			ops[gr] = map[v1alpha1.Operation]bool{}
		}
		for op, on := range use.Operations {
			if on {
				ops[gr][op] = true
			}
		}
	}
	grs := make([]schema.GroupResource, 0, len(ops))
	for gr := range ops {
		grs = append(grs, gr)
	}
	sort.Slice(grs, func(i, j int) bool {
		if grs[i].Group != grs[j].Group {
			return grs[i].Group < grs[j].Group
		}
		return grs[i].Resource < grs[j].Resource
	})
	out := make([]admissionregistrationv1.RuleWithOperations, 0, len(grs))
	for _, gr := range grs {
		var opList []admissionregistrationv1.OperationType
		for _, op := range []v1alpha1.Operation{v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete} {
			if ops[gr][op] {
				opList = append(opList, admissionregistrationv1.OperationType(op))
			}
		}
		if len(opList) == 0 {
			continue
		}
		out = append(out, admissionregistrationv1.RuleWithOperations{
			Operations: opList,
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{gr.Group},
				APIVersions: []string{"*"},
				Resources:   []string{gr.Resource, gr.Resource + "/" + SubresourceScale},
				Scope:       ptr.To(admissionregistrationv1.AllScopes),
			},
		})
	}
	return out
}
