package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// fakeClock is a clock a test moves forward.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newRotatorClient(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).Build()
}

var testSecret = types.NamespacedName{Namespace: "gitops-reverser-system", Name: "webhook-cert"}

func newTestRotator(t *testing.T, c client.Client, clock *fakeClock) *CertRotator {
	t.Helper()
	r, err := NewCertRotator(CertRotatorOptions{
		Client: c, Secret: testSecret, Dir: t.TempDir(), Hosts: []string{"127.0.0.1"},
		Validity: time.Hour, Clock: clock.Now, Log: logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// call makes an HTTPS request to url trusting bundle, as the API server
// does with a caBundle, and returns the serving certificate it saw.
func call(t *testing.T, url string, bundle []byte) (*x509.Certificate, error) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("the bundle holds no certificate")
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.TLS.PeerCertificates[0], nil
}

func serve(t *testing.T, r *CertRotator) string {
	t.Helper()
	// As controller-runtime's webhook server: no Certificates, only
	// GetCertificate (httptest would add its own certificate).
	cfg := &tls.Config{}
	r.TLSOption(cfg)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: time.Minute, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String()
}

func TestCertRotator_Rotate_servedCertAndCABundleFollow(t *testing.T) {
	ctx := context.Background()
	c := newRotatorClient(t)
	clock := &fakeClock{now: time.Now()}
	leader, follower := newTestRotator(t, c, clock), newTestRotator(t, c, clock)
	if err := leader.Ensure(ctx); err != nil {
		t.Fatalf("ensure (creates the Secret): %v", err)
	}
	if err := follower.Ensure(ctx); err != nil {
		t.Fatalf("ensure (reads the Secret): %v", err)
	}
	leaderURL, followerURL := serve(t, leader), serve(t, follower)

	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "r"},
		Resources:  []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}}},
		Operations: map[v1alpha1.Operation]bool{"CREATE": true}})
	syncer, err := NewConfigSyncer(SyncerOptions{Client: c, Index: ix, URL: leaderURL, CAFile: leader.CAFile(), ServingCertFile: leader.CertFile()})
	if err != nil {
		t.Fatal(err)
	}
	if err := syncer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	bundle := func() []byte {
		t.Helper()
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: DefaultConfigurationName}, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Webhooks[0].ClientConfig.CABundle
	}
	before := bundle()
	first, err := call(t, leaderURL, before)
	if err != nil {
		t.Fatalf("call before rotation: %v", err)
	}
	if got, err := call(t, followerURL, before); err != nil || !got.Equal(first) {
		t.Fatalf("the follower serves another certificate than the leader (err %v)", err)
	}

	if rotated, err := leader.Rotate(ctx, syncer.Sync); err != nil || rotated {
		t.Fatalf("rotated a fresh certificate: %v, %v", rotated, err)
	}
	clock.add(45 * time.Minute) // a quarter of the validity left
	var servedAtFirstSync *x509.Certificate
	syncFirst := func(ctx context.Context) error {
		if servedAtFirstSync == nil {
			servedAtFirstSync, _ = call(t, leaderURL, before)
		}
		return syncer.Sync(ctx)
	}
	if rotated, err := leader.Rotate(ctx, syncFirst); err != nil || !rotated {
		t.Fatalf("did not rotate with a quarter left: %v, %v", rotated, err)
	}
	if servedAtFirstSync == nil || !servedAtFirstSync.Equal(first) {
		t.Fatal("the leader served the new certificate before the caBundle was synced")
	}
	after := bundle()
	if bytes.Equal(after, before) || !bytes.Contains(after, before) {
		t.Fatalf("the caBundle after rotation must hold the new CA and the old one")
	}
	second, err := call(t, leaderURL, after)
	if err != nil {
		t.Fatalf("call after rotation: %v", err)
	}
	if second.Equal(first) {
		t.Fatal("the leader serves the old certificate after rotation")
	}
	// The follower still serves the old certificate until it reads the
	// Secret: the new bundle trusts it.
	if got, err := call(t, followerURL, after); err != nil || !got.Equal(first) {
		t.Fatalf("the follower before its refresh: err %v", err)
	}
	if err := follower.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := call(t, followerURL, after); err != nil || !got.Equal(second) {
		t.Fatalf("the follower after its refresh does not serve the rotated certificate (err %v)", err)
	}
	if mirrored, err := os.ReadFile(follower.CAFile()); err != nil || !bytes.Equal(mirrored, after) {
		t.Fatalf("the follower's ca.crt is not the Secret's bundle (err %v)", err)
	}
	if err := syncer.CheckServingCert(nil); err != nil {
		t.Fatalf("readiness after rotation: %v", err)
	}

	// Past the old CA's expiry, a rotation drops it from the bundle.
	clock.add(45 * time.Minute)
	if rotated, err := leader.Rotate(ctx, syncer.Sync); err != nil || !rotated {
		t.Fatalf("second rotation: %v, %v", rotated, err)
	}
	certs, err := parseCerts(bundle())
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("bundle after the old CA expired holds %d CAs, want 2 (new and previous)", len(certs))
	}
}

func TestCertRotator_due_cases(t *testing.T) {
	c := newRotatorClient(t)
	clock := &fakeClock{now: time.Now()}
	r := newTestRotator(t, c, clock)
	fresh, err := newCertSet([]string{"127.0.0.1"}, time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherHost, err := newCertSet([]string{"other.example"}, time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := newCertSet([]string{"127.0.0.1"}, time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    map[string][]byte
		at      time.Duration
		wantDue bool
	}{
		{name: "fresh", data: map[string][]byte{CAFileName: fresh.ca, CertFileName: fresh.cert, KeyFileName: fresh.key}},
		{name: "half left", data: map[string][]byte{CAFileName: fresh.ca, CertFileName: fresh.cert, KeyFileName: fresh.key}, at: 30 * time.Minute},
		{name: "a quarter left", data: map[string][]byte{CAFileName: fresh.ca, CertFileName: fresh.cert, KeyFileName: fresh.key}, at: 45 * time.Minute, wantDue: true},
		{name: "empty", data: nil, wantDue: true},
		{name: "another host", data: map[string][]byte{CAFileName: otherHost.ca, CertFileName: otherHost.cert, KeyFileName: otherHost.key}, wantDue: true},
		{name: "another CA", data: map[string][]byte{CAFileName: otherCA.ca, CertFileName: fresh.cert, KeyFileName: fresh.key}, wantDue: true},
		{name: "key of another certificate", data: map[string][]byte{CAFileName: fresh.ca, CertFileName: fresh.cert, KeyFileName: otherCA.key}, wantDue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := r.due(tt.data, clock.Now().Add(tt.at))
			if (why != "") != tt.wantDue {
				t.Fatalf("due = %q, want due %v", why, tt.wantDue)
			}
		})
	}
}

func TestCertRotator_Ensure_secondReplicaReadsTheFirstsSecret(t *testing.T) {
	ctx := context.Background()
	c := newRotatorClient(t)
	clock := &fakeClock{now: time.Now()}
	a, b := newTestRotator(t, c, clock), newTestRotator(t, c, clock)
	for _, r := range []*CertRotator{a, b, a} {
		if err := r.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ca, _ := os.ReadFile(a.CAFile())
	cb, _ := os.ReadFile(b.CAFile())
	if len(ca) == 0 || !bytes.Equal(ca, cb) {
		t.Fatal("the replicas do not share one CA")
	}
	var s corev1.Secret
	if err := c.Get(ctx, testSecret, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != corev1.SecretTypeTLS || len(s.Data[KeyFileName]) == 0 {
		t.Fatalf("the Secret is %s with keys %d", s.Type, len(s.Data))
	}
}
