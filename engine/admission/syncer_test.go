package admission

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
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

// TestConfigSyncer_Sync_caBundleFollowsTheCertificate: the configuration
// gets the CA file's bundle, read at every sync; a serving certificate that
// the bundle does not sign is reported (gauge, one Warning event, failing
// readiness check) until it is fixed.
func TestConfigSyncer_Sync_caBundleFollowsTheCertificate(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "r"},
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}}})
	certDir := t.TempDir()
	rightCA, err := SelfSignedCert(certDir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeTestFile(t, t.TempDir(), "ca.crt", newTestCA(t, "a stale CA").pem)
	recorder := events.NewFakeRecorder(10)
	s, err := NewConfigSyncer(SyncerOptions{
		Client: c, Index: ix, URL: "https://127.0.0.1:9443/validate",
		CAFile: caFile, ServingCertFile: filepath.Join(certDir, CertFileName), Recorder: recorder,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bundle := func() []byte {
		t.Helper()
		var got admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: DefaultConfigurationName}, &got); err != nil {
			t.Fatal(err)
		}
		return got.Webhooks[0].ClientConfig.CABundle
	}

	for i := 0; i < 2; i++ { // a lasting mismatch is one event, not one per sync
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(bundle(), readTestFile(t, caFile)) {
		t.Error("the caBundle is not the CA file's content")
	}
	if got := caMismatch.Value(); got != 1 {
		t.Errorf("gitops_reverser_webhook_ca_mismatch %v, want 1", got)
	}
	if err := s.CheckServingCert(nil); err == nil {
		t.Error("the readiness check passed with a mismatch")
	}
	if n := len(recorder.Events); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	if ev := <-recorder.Events; !strings.Contains(ev, "Warning "+ReasonCAMismatch) {
		t.Errorf("event %q, want a Warning %s", ev, ReasonCAMismatch)
	}

	// The CA file is fixed (cert-manager wrote the right CA): the next sync
	// writes it, and the report clears.
	if err := os.WriteFile(caFile, rightCA, 0o600); err != nil {
		t.Fatal(err)
	}
	// Readiness checks (on any replica) do not hide the change from the
	// leader's next file check.
	if err := s.CheckServingCert(nil); err != nil {
		t.Errorf("readiness check with the right CA: %v", err)
	}
	if !s.filesChanged() {
		t.Error("a changed CA file went unnoticed")
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bundle(), rightCA) {
		t.Error("the caBundle did not follow the CA file")
	}
	if got := caMismatch.Value(); got != 0 {
		t.Errorf("gitops_reverser_webhook_ca_mismatch %v, want 0", got)
	}
	if err := s.CheckServingCert(nil); err != nil {
		t.Errorf("readiness check: %v", err)
	}
	if s.filesChanged() {
		t.Error("unchanged files reported as changed")
	}

	// A CA file that cannot be read fails the sync: the configuration is
	// not rewritten without its caBundle.
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err == nil {
		t.Error("a sync without the CA file succeeded")
	}
	if !bytes.Equal(bundle(), rightCA) {
		t.Error("a failed sync changed the caBundle")
	}
}

func TestConfigSyncer_Sync_injectCAFromKeepsTheInjectedBundle(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "r"},
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}}})
	s, err := NewConfigSyncer(SyncerOptions{Client: c, Index: ix, URL: "https://127.0.0.1:9443/validate",
		CABundle: []byte("mounted"), InjectCAFrom: "sys/webhook-cert"})
	if err != nil {
		t.Fatal(err)
	}
	get := func() *admissionregistrationv1.ValidatingWebhookConfiguration {
		t.Helper()
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: DefaultConfigurationName}, &cfg); err != nil {
			t.Fatal(err)
		}
		return &cfg
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := get()
	if cfg.Annotations[InjectCAAnnotation] != "sys/webhook-cert" || string(cfg.Webhooks[0].ClientConfig.CABundle) != "mounted" {
		t.Fatalf("created: annotations %v, caBundle %q", cfg.Annotations, cfg.Webhooks[0].ClientConfig.CABundle)
	}
	// cert-manager injects a newer CA; a sync (a rule change) keeps it.
	cfg.Webhooks[0].ClientConfig.CABundle = []byte("injected")
	if err := c.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "r2"},
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}}}})
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cfg = get()
	if len(cfg.Webhooks[0].Rules) != 2 || string(cfg.Webhooks[0].ClientConfig.CABundle) != "injected" {
		t.Fatalf("after a rule change: %d rules, caBundle %q", len(cfg.Webhooks[0].Rules), cfg.Webhooks[0].ClientConfig.CABundle)
	}
}
