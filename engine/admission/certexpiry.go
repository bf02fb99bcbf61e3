package admission

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
)

// certExpiryName is the gauge with the serving certificate's NotAfter.
const certExpiryName = "gitops_reverser_webhook_certificate_expiry_timestamp_seconds"

// certExpiryFile is the serving certificate the gauge reads; nil until
// ExportCertExpiry names one.
var certExpiryFile atomic.Pointer[string]

// certExpiry reads the certificate at every scrape, so it follows a
// rotation (a new file from cert-manager's Secret or from the operator)
// without anyone telling it.
var certExpiry = telemetry.NewGaugeFunc(certExpiryName,
	"NotAfter of the webhook's serving certificate (tls.crt, first certificate), in Unix seconds; 0 while it cannot be read. Alert before it passes: the API server then cannot call the webhook and changes are recorded with author unknown.",
	func() float64 {
		p := certExpiryFile.Load()
		if p == nil {
			return 0
		}
		notAfter, err := certNotAfter(*p)
		if err != nil {
			return 0
		}
		return float64(notAfter)
	})

// ExportCertExpiry makes gitops_reverser_webhook_certificate_expiry_timestamp_seconds
// report the NotAfter of the PEM certificate in file, read again at every
// scrape. An empty file leaves the gauge at 0.
func ExportCertExpiry(file string) {
	if file == "" {
		certExpiryFile.Store(nil)
		return
	}
	certExpiryFile.Store(&file)
}

// certNotAfter returns the NotAfter (Unix seconds) of the first
// certificate in the PEM file.
func certNotAfter(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("reading the serving certificate: %w", err)
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return 0, errors.New("no CERTIFICATE block in " + file)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return 0, fmt.Errorf("parsing the serving certificate %s: %w", file, err)
		}
		return cert.NotAfter.Unix(), nil
	}
}
