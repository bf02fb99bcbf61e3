package admission

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// Start syncs at once, after every change of the index, and every
// ResyncInterval, until ctx ends. A failed sync is retried; Start returns
// only when ctx ends.
func (s *ConfigSyncer) Start(ctx context.Context) error {
	changed := s.opts.Index.Subscribe()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-timer.C:
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
// differs from what the cluster holds.
func (s *ConfigSyncer) Sync(ctx context.Context) error {
	want := s.Desired()
	var have admissionregistrationv1.ValidatingWebhookConfiguration
	err := s.opts.Client.Get(ctx, client.ObjectKey{Name: s.opts.Name}, &have)
	switch {
	case apierrors.IsNotFound(err):
		if err := s.opts.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("creating ValidatingWebhookConfiguration %s: %w", s.opts.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", s.opts.Name, err)
	}
	if equality.Semantic.DeepEqual(have.Webhooks, want.Webhooks) {
		return nil
	}
	have.Webhooks = want.Webhooks
	if err := s.opts.Client.Update(ctx, &have); err != nil {
		return fmt.Errorf("updating ValidatingWebhookConfiguration %s: %w", s.opts.Name, err)
	}
	return nil
}

// Desired returns the configuration for the index's current resources.
// Every field the API server would default is set, so that an unchanged
// configuration compares equal and is not rewritten.
func (s *ConfigSyncer) Desired() *admissionregistrationv1.ValidatingWebhookConfiguration {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: s.opts.Name},
	}
	ruleList := webhookRules(s.opts.Index.Resources())
	if len(ruleList) == 0 {
		return cfg
	}
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: s.opts.CABundle}
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
