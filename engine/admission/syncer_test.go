package admission

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

func TestConfigSyncer_Sync_followsIndex(t *testing.T) {
	tests := []struct {
		name      string
		rules     []*rules.Rule
		wantRules []string // apiGroup/resource,subresource:operations
	}{
		{name: "no rules, no webhook"},
		{
			name: "one rule per resource, versions merged, status never",
			rules: []*rules.Rule{
				{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "a", Name: "r1"}, Operations: map[v1alpha1.Operation]bool{"CREATE": true},
					Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}}}},
				{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "r2"},
					Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}, {GVR: schema.GroupVersionResource{Group: "apps", Version: "v1beta1", Resource: "deployments"}}}},
			},
			wantRules: []string{"/configmaps,configmaps/scale:CREATE,UPDATE,DELETE", "apps/deployments,deployments/scale:CREATE,UPDATE,DELETE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(scheme).Build()
			ix := rules.NewIndex()
			for _, r := range tt.rules {
				ix.Upsert(r)
			}
			s, err := NewConfigSyncer(SyncerOptions{Client: c, Index: ix, URL: "https://127.0.0.1:9443/validate", CABundle: []byte("ca")})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i := 0; i < 2; i++ { // create, then an unchanged sync
				if err := s.Sync(ctx); err != nil {
					t.Fatalf("sync %d: %v", i, err)
				}
			}
			var got admissionregistrationv1.ValidatingWebhookConfiguration
			if err := c.Get(ctx, client.ObjectKey{Name: DefaultConfigurationName}, &got); err != nil {
				t.Fatal(err)
			}
			if got.ResourceVersion != "1" {
				t.Errorf("resourceVersion %s: an unchanged sync rewrote the configuration", got.ResourceVersion)
			}
			if len(tt.wantRules) == 0 {
				if len(got.Webhooks) != 0 {
					t.Errorf("webhooks %v, want none", got.Webhooks)
				}
				return
			}
			if len(got.Webhooks) != 1 {
				t.Fatalf("%d webhooks, want 1", len(got.Webhooks))
			}
			wh := got.Webhooks[0]
			if wh.Name != WebhookName || *wh.FailurePolicy != admissionregistrationv1.Ignore || *wh.TimeoutSeconds != 2 ||
				*wh.SideEffects != admissionregistrationv1.SideEffectClassNone || *wh.MatchPolicy != admissionregistrationv1.Equivalent ||
				*wh.ClientConfig.URL != "https://127.0.0.1:9443/validate" {
				t.Errorf("webhook %+v not as configured", wh)
			}
			var have []string
			for _, r := range wh.Rules {
				s := r.APIGroups[0] + "/" + r.Resources[0] + "," + r.Resources[1] + ":"
				for i, op := range r.Operations {
					if i > 0 {
						s += ","
					}
					s += string(op)
				}
				have = append(have, s)
				if r.APIVersions[0] != "*" || *r.Scope != admissionregistrationv1.AllScopes {
					t.Errorf("rule %v: want versions * and scope *", r)
				}
			}
			if len(have) != len(tt.wantRules) {
				t.Fatalf("rules %v, want %v", have, tt.wantRules)
			}
			for i := range have {
				if have[i] != tt.wantRules[i] {
					t.Errorf("rule %d = %s, want %s", i, have[i], tt.wantRules[i])
				}
			}
		})
	}
}

func TestNewConfigSyncer_validates(t *testing.T) {
	ix := rules.NewIndex()
	c := fake.NewClientBuilder().Build()
	tests := []struct {
		name string
		opts SyncerOptions
	}{
		{name: "neither URL nor service", opts: SyncerOptions{Client: c, Index: ix}},
		{name: "both URL and service", opts: SyncerOptions{Client: c, Index: ix, URL: "https://x", Service: &admissionregistrationv1.ServiceReference{Name: "s", Namespace: "n"}}},
		{name: "no client", opts: SyncerOptions{Index: ix, URL: "https://x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewConfigSyncer(tt.opts); err == nil {
				t.Error("want an error")
			}
		})
	}
}
