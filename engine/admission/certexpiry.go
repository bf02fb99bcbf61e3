package admission

import (
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
		cert, err := readCert(*p)
		if err != nil {
			return 0
		}
		return float64(cert.NotAfter.Unix())
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
