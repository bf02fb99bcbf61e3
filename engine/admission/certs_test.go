package admission

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// testCA is a CA made for a test, issuing server and client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newTestCA makes a CA; with hosts it is also a self-signed server
// certificate for them, as `openssl req -x509` makes one.
func newTestCA(t *testing.T, name string, hosts ...string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) for cn, valid for hosts, for
// usage (server or client authentication).
func (ca *testCA) issue(t *testing.T, cn string, hosts []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func writeTestFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readTestFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrepareServingCert_PrepareServingCert_cases(t *testing.T) {
	const host = "127.0.0.1"
	hosts := []string{"localhost", host}
	// A certificate made by SelfSignedCert, as a first start leaves it.
	made := func(t *testing.T, dir string) {
		if _, err := SelfSignedCert(dir, hosts); err != nil {
			t.Fatal(err)
		}
	}
	// A certificate from a foreign CA without ca.crt, as an older version
	// or a hand-made folder leaves it.
	var userCA *testCA
	foreign := func(t *testing.T, dir string) {
		userCA = newTestCA(t, "user CA")
		crt, key := userCA.issue(t, "webhook", hosts, x509.ExtKeyUsageServerAuth)
		writeTestFile(t, dir, CertFileName, crt)
		writeTestFile(t, dir, KeyFileName, key)
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T, dir string)
		owned      bool
		caFile     func(t *testing.T, dir string) string // --webhook-ca-file
		want       CertOrigin
		wantErr    string
		kept       bool // tls.crt is the one setup wrote
		wantCAFile string
		mismatch   bool
	}{
		{name: "fresh folder: made, with ca.crt", owned: true, want: CertMade, wantCAFile: CAFileName},
		{name: "restart with cert and ca.crt: the CA is read back", setup: made, owned: true, want: CertCABeside, kept: true, wantCAFile: CAFileName},
		{name: "restart of a user folder with ca.crt (cert-manager)", setup: made, want: CertCABeside, kept: true, wantCAFile: CAFileName},
		{name: "own folder, cert without ca.crt (older version): replaced", setup: foreign, owned: true, want: CertRemade, wantCAFile: CAFileName},
		{name: "user folder, cert without ca.crt: error naming ca.crt", setup: foreign, wantErr: "names no CA"},
		{
			name: "user folder, self-signed cert without ca.crt: its own CA", owned: false, want: CertSelfSigned, kept: true, wantCAFile: CertFileName,
			setup: func(t *testing.T, dir string) {
				ca := newTestCA(t, "webhook", hosts...)
				writeTestFile(t, dir, CertFileName, ca.pem)
			},
		},
		{
			name: "CA file wins over ca.crt", setup: foreign, want: CertCAFile, kept: true,
			caFile: func(t *testing.T, _ string) string {
				return writeTestFile(t, t.TempDir(), "ca.pem", userCA.pem)
			},
		},
		{
			name: "CA file that did not sign the cert: reported as a mismatch", setup: made, want: CertCAFile, kept: true, mismatch: true,
			caFile: func(t *testing.T, _ string) string {
				return writeTestFile(t, t.TempDir(), "ca.pem", newTestCA(t, "other").pem)
			},
		},
		{
			name: "CA file without a cert: error", wantErr: "holds no tls.crt",
			caFile: func(t *testing.T, _ string) string {
				return writeTestFile(t, t.TempDir(), "ca.pem", newTestCA(t, "other").pem)
			},
		},
		{
			name: "own folder, ca.crt of another CA: replaced", owned: true, want: CertRemade, wantCAFile: CAFileName,
			setup: func(t *testing.T, dir string) {
				made(t, dir)
				writeTestFile(t, dir, CAFileName, newTestCA(t, "other").pem)
			},
		},
		{
			name: "own folder, cert for another host: replaced", owned: true, want: CertRemade, wantCAFile: CAFileName,
			setup: func(t *testing.T, dir string) {
				if _, err := SelfSignedCert(dir, []string{"elsewhere.example"}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "user folder, cert for another host: kept, reported as a mismatch", want: CertCABeside, kept: true, wantCAFile: CAFileName, mismatch: true,
			setup: func(t *testing.T, dir string) {
				if _, err := SelfSignedCert(dir, []string{"elsewhere.example"}); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "webhook-certs")
			var before []byte
			if tt.setup != nil {
				tt.setup(t, dir)
				before = readTestFile(t, filepath.Join(dir, CertFileName))
			}
			var caFile string
			if tt.caFile != nil {
				caFile = tt.caFile(t, dir)
			}
			sc, err := PrepareServingCert(ServingCertOptions{Dir: dir, Owned: tt.owned, Hosts: hosts, Host: host, CAFile: caFile})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sc.Origin != tt.want {
				t.Errorf("origin %q, want %q", sc.Origin, tt.want)
			}
			wantCAFile := caFile
			if tt.wantCAFile != "" {
				wantCAFile = filepath.Join(dir, tt.wantCAFile)
			}
			if sc.CAFile != wantCAFile {
				t.Errorf("CA file %s, want %s", sc.CAFile, wantCAFile)
			}
			after := readTestFile(t, sc.CertFile)
			if kept := bytes.Equal(before, after); kept != tt.kept {
				t.Errorf("certificate kept %v, want %v", kept, tt.kept)
			}
			// What the API server would see: the certificate against the
			// bundle the configuration gets.
			verr := VerifyServingCert(after, readTestFile(t, sc.CAFile), host)
			if (verr != nil) != tt.mismatch || (sc.Mismatch != nil) != tt.mismatch {
				t.Errorf("verify %v, reported mismatch %v; want a mismatch: %v", verr, sc.Mismatch, tt.mismatch)
			}
		})
	}
}

func TestSelfSignedCert_SelfSignedCert_writesCABeside(t *testing.T) {
	dir := t.TempDir()
	ca, err := SelfSignedCert(dir, []string{"svc.ns.svc", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readTestFile(t, filepath.Join(dir, CAFileName)), ca) {
		t.Error("ca.crt differs from the returned CA")
	}
	for _, host := range []string{"svc.ns.svc", "127.0.0.1"} {
		if err := VerifyServingCert(readTestFile(t, filepath.Join(dir, CertFileName)), ca, host); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if err := VerifyServingCert(readTestFile(t, filepath.Join(dir, CertFileName)), ca, "other.ns.svc"); err == nil {
		t.Error("a certificate for svc.ns.svc verified for other.ns.svc")
	}
}

func testService() *admissionregistrationv1.ServiceReference {
	return &admissionregistrationv1.ServiceReference{Namespace: "sys", Name: "hook"}
}

func TestServingHosts_ServingHosts_cases(t *testing.T) {
	tests := []struct {
		name string
		url  string
		svc  bool
		want string
	}{
		{name: "service", svc: true, want: "hook.sys.svc,hook.sys.svc.cluster.local,hook.sys,localhost,127.0.0.1"},
		{name: "loopback URL", url: "https://127.0.0.1:9443/validate", want: "localhost,127.0.0.1"},
		{name: "named URL", url: "https://dev.example:9443/validate", want: "dev.example,localhost,127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if tt.svc {
				got = ServingHosts("", testService())
			} else {
				got = ServingHosts(tt.url, nil)
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("hosts %v, want %s", got, tt.want)
			}
		})
	}
}
