package admission

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// ServingCertCheck is a readiness check: it fails while the serving
// certificate in certFile cannot be read or is not valid now (expired, or
// not yet valid). Its expiry is served by
// gitops_reverser_webhook_certificate_expiry_timestamp_seconds
// (certexpiry.go). The file is read at every call, so a rotated certificate counts at once.
func ServingCertCheck(certFile string, now func() time.Time) func(*http.Request) error {
	if now == nil {
		now = time.Now
	}
	return func(*http.Request) error {
		cert, err := readCert(certFile)
		if err != nil {
			return err
		}
		switch t := now(); {
		case t.After(cert.NotAfter):
			return fmt.Errorf("the webhook serving certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
		case t.Before(cert.NotBefore):
			return fmt.Errorf("the webhook serving certificate is valid only from %s", cert.NotBefore.UTC().Format(time.RFC3339))
		}
		return nil
	}
}

// readCert parses the first certificate of a PEM file (other blocks, such
// as a key, are skipped).
func readCert(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook serving certificate: %w", err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("the webhook serving certificate file holds no PEM certificate")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing the webhook serving certificate: %w", err)
		}
		return cert, nil
	}
}
