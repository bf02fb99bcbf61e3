package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Defaults of a CertRotator.
const (
	// DefaultCertValidity is how long a self-managed CA and serving
	// certificate are valid; they are replaced when a third is left.
	DefaultCertValidity = 365 * 24 * time.Hour
	// DefaultCertRefresh is how often every replica reads the Secret.
	DefaultCertRefresh = 30 * time.Second
)

// CertRotatorOptions configure a CertRotator.
type CertRotatorOptions struct {
	// Client reads and writes the Secret; an uncached client (the
	// manager's API reader does not write, so a plain client.New).
	Client client.Client
	// Secret names the Secret shared by all replicas.
	Secret types.NamespacedName
	// Dir receives tls.crt, tls.key and ca.crt, mirrored from the Secret,
	// for the webhook configuration syncer and the readiness check.
	Dir string
	// Hosts are the names the serving certificate is valid for; Hosts[0]
	// (or Host when set) is the one it is checked against.
	Hosts []string
	// Host is the name the API server checks the certificate against.
	Host string
	// Validity of a made CA and serving certificate; DefaultCertValidity
	// when 0.
	Validity time.Duration
	// Refresh is how often the Secret is read (every replica) and checked
	// for rotation (the leader); DefaultCertRefresh when 0, at most a
	// tenth of Validity.
	Refresh time.Duration
	// Log receives rotations and errors.
	Log logr.Logger
	// Clock is the time; time.Now when nil (tests move it forward).
	Clock func() time.Time
}

// CertRotator keeps the webhook's serving certificate and its CA in one
// Secret that every replica reads, so that whichever replica the API
// server calls presents a certificate the caBundle trusts:
//
//   - every replica reads the Secret at start (creating it when missing)
//     and every Refresh, serves its certificate through GetCertificate and
//     mirrors it into Dir;
//   - the leader (Leader's runnable) replaces CA and certificate when a
//     third of their validity is left, or when they no longer verify for
//     the host. The Secret's ca.crt keeps the CAs before the new one while
//     they are valid, so a replica that still serves the old certificate
//     is trusted until it reads the Secret again; the leader syncs the
//     webhook configuration's caBundle before it serves the new
//     certificate itself.
//
// The Secret holds tls.crt, tls.key and ca.crt; no CA key is kept (each
// rotation makes a new CA).
type CertRotator struct {
	opts CertRotatorOptions
	// busy serializes Ensure and Rotate: a refresh that read the rotated
	// Secret must not serve its certificate before Rotate synced the
	// caBundle, nor write the mirrored files at the same time.
	busy sync.Mutex
	mu   sync.Mutex
	cert *tls.Certificate
	// version is the Secret's content that cert and Dir hold, data that
	// content.
	version []byte
	data    map[string][]byte
}

// NewCertRotator returns a CertRotator; Client, Secret, Dir and Hosts are
// required.
func NewCertRotator(opts CertRotatorOptions) (*CertRotator, error) {
	if opts.Client == nil || opts.Secret.Name == "" || opts.Secret.Namespace == "" || opts.Dir == "" || len(opts.Hosts) == 0 {
		return nil, errors.New("webhook certificate rotator: Client, Secret (namespace and name), Dir and Hosts are required")
	}
	if opts.Validity <= 0 {
		opts.Validity = DefaultCertValidity
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultCertRefresh
	}
	opts.Refresh = min(opts.Refresh, opts.Validity/10)
	if opts.Host == "" {
		opts.Host = opts.Hosts[0]
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &CertRotator{opts: opts}, nil
}

// CertFile is the mirrored serving certificate.
func (r *CertRotator) CertFile() string { return filepath.Join(r.opts.Dir, CertFileName) }

// CAFile is the mirrored CA bundle.
func (r *CertRotator) CAFile() string { return filepath.Join(r.opts.Dir, CAFileName) }

// GetCertificate serves the certificate last read from the Secret
// (tls.Config.GetCertificate).
func (r *CertRotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert == nil {
		return nil, errors.New("the webhook certificate is not loaded yet")
	}
	return r.cert, nil
}

// TLSOption sets GetCertificate on the webhook server's TLS config.
func (r *CertRotator) TLSOption(c *tls.Config) { c.GetCertificate = r.GetCertificate }

// NeedLeaderElection is false: every replica serves the certificate.
func (r *CertRotator) NeedLeaderElection() bool { return false }

// Start reads the Secret every Refresh until ctx ends; errors are logged
// and retried.
func (r *CertRotator) Start(ctx context.Context) error {
	t := time.NewTicker(r.opts.Refresh)
	defer t.Stop()
	for {
		if err := r.Ensure(ctx); err != nil && ctx.Err() == nil {
			r.opts.Log.Error(err, "reading the webhook certificate Secret", "secret", r.opts.Secret)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Ensure reads the Secret, creating it with a new CA and certificate
// when it does not exist, and loads it when it changed.
func (r *CertRotator) Ensure(ctx context.Context) error {
	r.busy.Lock()
	defer r.busy.Unlock()
	var s corev1.Secret
	err := r.opts.Client.Get(ctx, r.opts.Secret, &s)
	if apierrors.IsNotFound(err) {
		set, serr := newCertSet(r.opts.Hosts, r.opts.Validity, r.opts.Clock())
		if serr != nil {
			return serr
		}
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: r.opts.Secret.Name, Namespace: r.opts.Secret.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "gitops-reverser"}},
			Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{CertFileName: set.cert, KeyFileName: set.key, CAFileName: set.ca},
		}
		err = r.opts.Client.Create(ctx, &s)
		if apierrors.IsAlreadyExists(err) { // another replica was first
			err = r.opts.Client.Get(ctx, r.opts.Secret, &s)
		}
		if err == nil {
			r.opts.Log.Info("created the webhook certificate Secret", "secret", r.opts.Secret)
		}
	}
	if err != nil {
		return fmt.Errorf("reading the webhook certificate Secret %s: %w", r.opts.Secret, err)
	}
	return r.load(s.Data)
}

// load serves and mirrors data when it differs from what is loaded.
func (r *CertRotator) load(data map[string][]byte) error {
	version := bytes.Join([][]byte{data[CAFileName], data[CertFileName], data[KeyFileName]}, []byte{0})
	r.mu.Lock()
	same := bytes.Equal(version, r.version)
	r.mu.Unlock()
	if same {
		return nil
	}
	cert, err := tls.X509KeyPair(data[CertFileName], data[KeyFileName])
	if err != nil {
		return fmt.Errorf("the webhook certificate Secret %s holds no usable tls.crt/tls.key: %w", r.opts.Secret, err)
	}
	if err := r.mirror(data); err != nil {
		return err
	}
	r.mu.Lock()
	r.cert, r.version, r.data = &cert, version, data
	r.mu.Unlock()
	r.opts.Log.Info("serving the webhook certificate from the Secret", "secret", r.opts.Secret, "notAfter", notAfter(data[CertFileName]))
	return nil
}

// mirror writes the files into Dir, each by rename so that a reader never
// sees half a file; ca.crt last, so that it trusts the served certificate.
func (r *CertRotator) mirror(data map[string][]byte) error {
	if err := os.MkdirAll(r.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", r.opts.Dir, err)
	}
	for _, name := range []string{KeyFileName, CertFileName, CAFileName} {
		tmp := filepath.Join(r.opts.Dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data[name], 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.Rename(tmp, filepath.Join(r.opts.Dir, name)); err != nil {
			return fmt.Errorf("replacing %s: %w", name, err)
		}
	}
	return nil
}

// Leader returns the runnable that rotates on the leader: every Refresh it
// checks the Secret and, when due, writes a new CA and certificate, runs
// beforeServe (the webhook configuration's sync, so that its caBundle
// trusts the new certificate first; nil for none) and serves it.
func (r *CertRotator) Leader(beforeServe func(context.Context) error) manager.Runnable {
	return &leaderRotation{r: r, beforeServe: beforeServe}
}

type leaderRotation struct {
	r           *CertRotator
	beforeServe func(context.Context) error
}

// NeedLeaderElection is true: only the leader rotates.
func (l *leaderRotation) NeedLeaderElection() bool { return true }

// Start checks for rotation every Refresh until ctx ends.
func (l *leaderRotation) Start(ctx context.Context) error {
	t := time.NewTicker(l.r.opts.Refresh)
	defer t.Stop()
	for {
		if _, err := l.r.Rotate(ctx, l.beforeServe); err != nil && ctx.Err() == nil {
			l.r.opts.Log.Error(err, "rotating the webhook certificate", "secret", l.r.opts.Secret)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Rotate replaces the Secret's CA and certificate when a third of their
// validity is left or they do not verify for the host, and reports
// whether it did. The update carries the Secret's resourceVersion, so two
// leaders (a stale one) cannot both rotate.
func (r *CertRotator) Rotate(ctx context.Context, beforeServe func(context.Context) error) (bool, error) {
	r.busy.Lock()
	defer r.busy.Unlock()
	var s corev1.Secret
	if err := r.opts.Client.Get(ctx, r.opts.Secret, &s); err != nil {
		return false, fmt.Errorf("reading the webhook certificate Secret %s: %w", r.opts.Secret, err)
	}
	now := r.opts.Clock()
	why := r.due(s.Data, now)
	if why == "" {
		return false, r.load(s.Data)
	}
	set, err := newCertSet(r.opts.Hosts, r.opts.Validity, now)
	if err != nil {
		return false, err
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[CAFileName] = append(set.ca, validCAs(s.Data[CAFileName], now)...)
	s.Data[CertFileName], s.Data[KeyFileName] = set.cert, set.key
	if err := r.opts.Client.Update(ctx, &s); err != nil {
		return false, fmt.Errorf("writing the rotated webhook certificate to %s: %w", r.opts.Secret, err)
	}
	r.opts.Log.Info("rotated the webhook certificate", "secret", r.opts.Secret, "reason", why)
	if beforeServe != nil {
		// The new bundle trusts the old certificate too: put the bundle
		// in place (and into the configuration) while the old certificate
		// is still served, then serve the new one.
		r.mu.Lock()
		served := r.data
		r.mu.Unlock()
		if served != nil {
			phase := map[string][]byte{CAFileName: s.Data[CAFileName], CertFileName: served[CertFileName], KeyFileName: served[KeyFileName]}
			if err := r.mirror(phase); err != nil {
				return true, err
			}
		}
		if err := beforeServe(ctx); err != nil {
			r.opts.Log.Error(err, "syncing the caBundle before serving the rotated certificate", "secret", r.opts.Secret)
		}
	}
	r.mu.Lock()
	r.version = nil // load again
	r.mu.Unlock()
	if err := r.load(s.Data); err != nil {
		return true, err
	}
	if beforeServe != nil {
		// Verify the served certificate against the synced bundle now.
		if err := beforeServe(ctx); err != nil {
			return true, err
		}
	}
	return true, nil
}

// due says why the Secret's certificate must be replaced, "" when not.
func (r *CertRotator) due(data map[string][]byte, now time.Time) string {
	if _, err := tls.X509KeyPair(data[CertFileName], data[KeyFileName]); err != nil {
		return "no usable tls.crt/tls.key"
	}
	certs, err := parseCerts(data[CertFileName])
	if err != nil {
		return "no usable tls.crt"
	}
	leaf := certs[0]
	if leaf.NotAfter.Sub(now) < r.opts.Validity/3 {
		return "a third of its validity is left"
	}
	if err := VerifyServingCert(data[CertFileName], data[CAFileName], r.opts.Host); err != nil {
		return "it does not verify: " + err.Error()
	}
	for _, h := range r.opts.Hosts {
		if leaf.VerifyHostname(h) != nil {
			return "it is not valid for " + h
		}
	}
	return ""
}

// validCAs returns the certificates of bundle that are still valid at now,
// PEM encoded.
func validCAs(bundle []byte, now time.Time) []byte {
	certs, err := parseCerts(bundle)
	if err != nil {
		return nil
	}
	var out []byte
	for _, c := range certs {
		if c.IsCA && now.Before(c.NotAfter) {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	return out
}

// notAfter is the end of the first certificate's validity, zero when it
// cannot be read.
func notAfter(certPEM []byte) time.Time {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return time.Time{}
	}
	return certs[0].NotAfter
}
