package admission

import (
	"bytes"

	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	"github.com/go-logr/logr"
)

// handshakeErrorsTotal counts TLS handshakes the webhook server refused or
// lost, among them every client without a certificate from the client CA.
var handshakeErrorsTotal = telemetry.NewCounter("gitops_reverser_webhook_tls_handshake_errors_total", "TLS handshakes of the webhook server that failed: a client without a certificate from the client CA, a wrong common name, a client that does not trust the serving certificate, a dropped connection.")

// handshakePrefix starts the line net/http writes to its server's error
// log for a failed TLS handshake.
var handshakePrefix = []byte("http: TLS handshake error from ")

// StdlibLog is an io.Writer for the standard library's log package (set it
// with log.SetOutput and log.SetFlags(0)). controller-runtime's webhook
// server offers no way to set its http.Server ErrorLog, so its lines reach
// the standard logger: a failed TLS handshake is counted in
// gitops_reverser_webhook_tls_handshake_errors_total and logged at V(1)
// with its remote address and error as keys; any other line is logged as
// it is. The operator's only TLS server is the webhook (metrics and probes
// are plain HTTP), so every handshake error is one of its.
type StdlibLog struct {
	// Log receives the lines.
	Log logr.Logger
}

// Write implements io.Writer. The log package writes one entry per call.
func (w StdlibLog) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\r\n")
	if i := bytes.Index(line, handshakePrefix); i >= 0 {
		handshakeErrorsTotal.Inc()
		rest := line[i+len(handshakePrefix):]
		remote, reason := rest, []byte(nil)
		if j := bytes.Index(rest, []byte(": ")); j >= 0 {
			remote, reason = rest[:j], rest[j+2:]
		}
		w.Log.V(1).Info("webhook TLS handshake failed", "remote", string(remote), "error", string(reason))
		return len(p), nil
	}
	w.Log.Info("standard library log", "line", string(line))
	return len(p), nil
}
