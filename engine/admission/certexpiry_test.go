package admission

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// expiryTestCert returns a PEM certificate valid until notAfter.
func expiryTestCert(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhook"},
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestExportCertExpiry_gauge_cases(t *testing.T) {
	first := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	second := time.Date(2032, 1, 2, 3, 4, 5, 0, time.UTC)
	keyBlock := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})
	cases := []struct {
		name    string
		content []byte // nil: no file
		want    float64
	}{
		{"leaf first", append(expiryTestCert(t, first), expiryTestCert(t, second)...), float64(first.Unix())},
		{"skips other blocks", append(keyBlock, expiryTestCert(t, second)...), float64(second.Unix())},
		{"missing file", nil, 0},
		{"not PEM", []byte("garbage"), 0},
	}
	t.Cleanup(func() { ExportCertExpiry("") })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), CertFileName)
			if c.content != nil {
				if err := os.WriteFile(file, c.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ExportCertExpiry(file)
			if got := certExpiry.Value(); got != c.want {
				t.Errorf("gauge = %v, want %v", got, c.want)
			}
		})
	}
}

func TestExportCertExpiry_gauge_followsRotation(t *testing.T) {
	t.Cleanup(func() { ExportCertExpiry("") })
	file := filepath.Join(t.TempDir(), CertFileName)
	first := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	rotated := first.Add(90 * 24 * time.Hour)
	if err := os.WriteFile(file, expiryTestCert(t, first), 0o600); err != nil {
		t.Fatal(err)
	}
	ExportCertExpiry(file)
	if got := certExpiry.Value(); got != float64(first.Unix()) {
		t.Fatalf("before rotation: gauge = %v, want %v", got, first.Unix())
	}
	if err := os.WriteFile(file, expiryTestCert(t, rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := certExpiry.Value(); got != float64(rotated.Unix()) {
		t.Errorf("after rotation: gauge = %v, want %v", got, rotated.Unix())
	}
	ExportCertExpiry("")
	if got := certExpiry.Value(); got != 0 {
		t.Errorf("unset: gauge = %v, want 0", got)
	}
}
