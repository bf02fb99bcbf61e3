package controlplane

import (
	"fmt"
	"net"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
)

// ServingCert writes tls.crt and tls.key for 127.0.0.1 and localhost into
// dir and returns the CA's PEM for a webhook configuration's caBundle.
func ServingCert(dir string) ([]byte, error) {
	ca, err := admission.SelfSignedCert(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		return nil, fmt.Errorf("making a serving certificate: %w", err)
	}
	return ca, nil
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
