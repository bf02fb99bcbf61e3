package admission

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientAuth returns a TLS option for the webhook server (controller-runtime's
// webhook.Options.TLSOpts) that hears only clients presenting a certificate
// signed by a CA in caFile and, when commonName is set, with that subject
// common name. Anyone else fails the TLS handshake, before a byte of an
// AdmissionReview is read.
//
// The API server presents such a certificate when its admission
// configuration (--admission-control-config-file, WebhookAdmissionConfiguration
// kubeConfigFile) names one for the webhook's host; see
// docs/threat-model.md. The CA is read once: a rotated client CA needs a
// restart.
func ClientAuth(caFile, commonName string) (func(*tls.Config), error) {
	if caFile == "" {
		return nil, errors.New("client CA: no file given")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("the webhook client CA %s holds no PEM certificate", caFile)
	}
	return func(c *tls.Config) {
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if commonName == "" {
			return
		}
		// VerifyConnection runs after the chain is verified, on full and
		// resumed handshakes alike.
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			if cn := cs.PeerCertificates[0].Subject.CommonName; cn != commonName {
				return fmt.Errorf("client certificate common name %q is not the expected %q", cn, commonName)
			}
			return nil
		}
	}, nil
}
