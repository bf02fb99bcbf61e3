package admission

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	iofs "io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// Files of a webhook certificate folder: the names controller-runtime's
// webhook server and cert-manager's Secrets use.
const (
	// CertFileName is the serving certificate (PEM, leaf first).
	CertFileName = "tls.crt"
	// KeyFileName is the serving certificate's private key.
	KeyFileName = "tls.key"
	// CAFileName is the CA that signed the serving certificate, the
	// webhook configuration's caBundle.
	CAFileName = "ca.crt"
)

// CertOrigin says where the webhook's serving certificate and its CA came
// from, for the start-up log.
type CertOrigin string

// Origins of a ServingCert.
const (
	// CertMade: the folder held no certificate; a self-signed one was made.
	CertMade CertOrigin = "made a self-signed certificate"
	// CertRemade: the operator's own folder held a certificate that was
	// unusable (no ca.crt, as an older version wrote it; a CA that does not
	// sign it; expired; not for the webhook's host); a new one replaced it.
	CertRemade CertOrigin = "replaced an unusable self-made certificate"
	// CertCAFile: an existing certificate; its CA from --webhook-ca-file.
	CertCAFile CertOrigin = "existing certificate, CA from the CA file"
	// CertCABeside: an existing certificate; its CA from ca.crt beside it
	// (written by SelfSignedCert, or by cert-manager into its Secrets).
	CertCABeside CertOrigin = "existing certificate, CA from ca.crt beside it"
	// CertSelfSigned: an existing self-signed certificate without ca.crt;
	// it is its own CA.
	CertSelfSigned CertOrigin = "existing self-signed certificate, its own CA"
)

// ServingCertOptions say where the webhook's serving certificate is and
// which host the API server calls.
type ServingCertOptions struct {
	// Dir holds tls.crt and tls.key (and ca.crt when known).
	Dir string
	// Owned is true when Dir is the operator's own folder (the default
	// under the work dir): an unusable certificate there is replaced. A
	// folder the user names (a cert-manager Secret) is never written to
	// when it holds a certificate.
	Owned bool
	// Hosts are the names a made certificate is valid for.
	Hosts []string
	// Host is the name the API server checks the certificate against (a
	// DNS name or an IP address); empty skips the name check.
	Host string
	// CAFile, when set, holds the CA (--webhook-ca-file); it wins over
	// ca.crt in Dir.
	CAFile string
}

// ServingCert is the webhook's serving certificate and the file with the
// CA the API server must trust for it.
type ServingCert struct {
	// CertFile is the serving certificate (Dir/tls.crt); controller-runtime
	// reloads it when it changes.
	CertFile string
	// CAFile holds the caBundle; read it again at every use, so that a
	// rotated CA (cert-manager) is followed.
	CAFile string
	// Origin says what PrepareServingCert found or did.
	Origin CertOrigin
	// Mismatch is why the certificate does not verify against the CA, nil
	// when it does. It is set only for a folder the operator does not own
	// (its own folder is repaired instead); the webhook configuration
	// syncer reports it.
	Mismatch error
}

// PrepareServingCert makes sure Dir holds a serving certificate and finds
// the CA that signed it:
//
//   - no tls.crt: a self-signed certificate and CA are made (ca.crt beside
//     them); with CAFile set this is an error, since no made certificate
//     can match a given CA;
//   - tls.crt and CAFile: the CA comes from CAFile;
//   - tls.crt and ca.crt: the CA comes from ca.crt;
//   - tls.crt alone, self-signed: the certificate is its own CA;
//   - tls.crt alone, signed by some CA: in the operator's own folder a new
//     certificate replaces it (an older version wrote no ca.crt); in a
//     folder the user named it is an error that says what to add.
//
// In the operator's own folder a certificate that does not verify against
// its ca.crt for Host (expired, another host, another CA) is replaced too.
// Elsewhere such a mismatch is returned in ServingCert.Mismatch, not fixed:
// the files are the user's.
func PrepareServingCert(o ServingCertOptions) (ServingCert, error) {
	sc := ServingCert{CertFile: filepath.Join(o.Dir, CertFileName)}
	certPEM, err := os.ReadFile(sc.CertFile)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		if o.CAFile != "" {
			return sc, fmt.Errorf("a CA file (%s) is given but %s holds no %s: mount the certificate that CA signed there", o.CAFile, o.Dir, CertFileName)
		}
		return makeServingCert(sc, o, CertMade)
	case err != nil:
		return sc, fmt.Errorf("reading the webhook certificate: %w", err)
	}
	beside := filepath.Join(o.Dir, CAFileName)
	switch {
	case o.CAFile != "":
		sc.CAFile, sc.Origin = o.CAFile, CertCAFile
	case fileExists(beside):
		sc.CAFile, sc.Origin = beside, CertCABeside
	case selfSigned(certPEM):
		sc.CAFile, sc.Origin = sc.CertFile, CertSelfSigned
	case o.Owned:
		return makeServingCert(sc, o, CertRemade)
	default:
		return sc, fmt.Errorf("the webhook certificate %s names no CA: put the CA that signed it beside it as %s, or pass its file as the CA file", sc.CertFile, CAFileName)
	}
	caPEM, err := os.ReadFile(sc.CAFile)
	if err != nil {
		return sc, fmt.Errorf("reading the webhook CA: %w", err)
	}
	if err := VerifyServingCert(certPEM, caPEM, o.Host); err != nil {
		if o.Owned && sc.Origin == CertCABeside {
			return makeServingCert(sc, o, CertRemade)
		}
		sc.Mismatch = err
	}
	return sc, nil
}

// ServingHosts are the names a self-made serving certificate is valid
// for: the Service's DNS names (in a cluster) or the URL's host, and
// localhost.
func ServingHosts(webhookURL string, svc *admissionregistrationv1.ServiceReference) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	if svc != nil {
		base := svc.Name + "." + svc.Namespace
		return append([]string{base + ".svc", base + ".svc.cluster.local", base}, hosts...)
	}
	if h := WebhookHost(webhookURL, nil); h != "" && !slices.Contains(hosts, h) {
		hosts = append([]string{h}, hosts...)
	}
	return hosts
}

func makeServingCert(sc ServingCert, o ServingCertOptions, origin CertOrigin) (ServingCert, error) {
	if _, err := SelfSignedCert(o.Dir, o.Hosts); err != nil {
		return sc, err
	}
	sc.CAFile, sc.Origin = filepath.Join(o.Dir, CAFileName), origin
	return sc, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// selfSigned reports whether the first certificate of certPEM signed
// itself.
func selfSigned(certPEM []byte) bool {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return false
	}
	leaf := certs[0]
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignatureFrom(leaf) == nil
}

// VerifyServingCert checks that the serving certificate certPEM (leaf
// first, then intermediates) chains to a CA in caBundle, is valid now, and,
// when host is set, is valid for host, as the API server checks it when it
// calls the webhook. A non-nil error says why the API server would refuse
// it.
func VerifyServingCert(certPEM, caBundle []byte, host string) error {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if len(caBundle) == 0 || !roots.AppendCertsFromPEM(caBundle) {
		return errors.New("the CA bundle holds no PEM certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("the serving certificate does not verify against the CA bundle: %w", err)
	}
	return nil
}

// parseCerts returns the certificates of a PEM file, at least one.
func parseCerts(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing a certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// SelfSignedCert writes tls.crt and tls.key for hosts (IP addresses or DNS
// names) into dir, signed by a fresh CA valid for a year, writes the CA
// beside them as ca.crt (so that a restart that keeps dir still knows the
// caBundle) and returns the CA's PEM. It serves a single replica without
// cert-manager; with several replicas each would have its own CA, so mount
// one certificate into all of them instead.
func SelfSignedCert(dir string, hosts []string) (caPEM []byte, err error) {
	set, err := newCertSet(hosts, 365*24*time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, CertFileName), set.cert, 0o600); err != nil {
		return nil, fmt.Errorf("writing tls.crt: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), set.key, 0o600); err != nil {
		return nil, fmt.Errorf("writing tls.key: %w", err)
	}
	// ca.crt last: a folder with ca.crt holds a complete set.
	if err := os.WriteFile(filepath.Join(dir, CAFileName), set.ca, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", CAFileName, err)
	}
	return set.ca, nil
}

// certSet is a fresh CA and a serving certificate it signed, PEM encoded.
// The CA's key signs once and is dropped: a rotation makes a new CA.
type certSet struct {
	ca, cert, key []byte
}

// newCertSet makes a CA and a serving certificate for hosts (IP addresses
// or DNS names), both valid from an hour before now for validity.
func newCertSet(hosts []string, validity time.Duration, now time.Time) (certSet, error) {
	if len(hosts) == 0 {
		return certSet{}, errors.New("no host names for the serving certificate")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certSet{}, fmt.Errorf("generating the CA key: %w", err)
	}
	// Random serials: a replaced CA must not look like the one before.
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	caSerial, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return certSet{}, fmt.Errorf("making a serial number: %w", err)
	}
	serial, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return certSet{}, fmt.Errorf("making a serial number: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "gitops-reverser webhook CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return certSet{}, fmt.Errorf("creating the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return certSet{}, fmt.Errorf("parsing the CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certSet{}, fmt.Errorf("generating the serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return certSet{}, fmt.Errorf("creating the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return certSet{}, fmt.Errorf("encoding the serving key: %w", err)
	}
	return certSet{
		ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// caMismatch is 1 while the serving certificate does not verify against
// the caBundle of the webhook configuration.
var caMismatch = telemetry.NewGauge("gitops_reverser_webhook_ca_mismatch", "1 while the webhook's serving certificate does not verify against the caBundle of its configuration (the API server cannot call the webhook; changes are recorded with author unknown), else 0.")
