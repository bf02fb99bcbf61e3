package admission

import (
	"crypto/tls"
	"crypto/x509"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

func TestStdlibLog_Write_lines(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		counted   bool
		wantInLog []string
	}{
		{name: "no client certificate", line: "http: TLS handshake error from 10.0.0.7:51234: tls: client didn't provide a certificate\n",
			counted: true, wantInLog: []string{`"remote"="10.0.0.7:51234"`, `"error"="tls: client didn't provide a certificate"`}},
		{name: "IPv6 remote", line: "http: TLS handshake error from [::1]:4433: EOF\n",
			counted: true, wantInLog: []string{`"remote"="[::1]:4433"`, `"error"="EOF"`}},
		{name: "other line", line: "http: superfluous response.WriteHeader call\n",
			wantInLog: []string{`"line"="http: superfluous response.WriteHeader call"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged []string
			w := StdlibLog{Log: funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{Verbosity: 1})}
			before := handshakeErrorsTotal.Value()
			if n, err := w.Write([]byte(tt.line)); err != nil || n != len(tt.line) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if got := handshakeErrorsTotal.Value() - before; (got == 1) != tt.counted {
				t.Errorf("counter rose by %v, counted = %v", got, tt.counted)
			}
			if len(logged) != 1 {
				t.Fatalf("logged %d entries, want 1: %q", len(logged), logged)
			}
			for _, want := range tt.wantInLog {
				if !strings.Contains(logged[0], want) {
					t.Errorf("log entry %s lacks %s", logged[0], want)
				}
			}
		})
	}
}

// TestStdlibLog_Write_refusedClient runs a real TLS server that requires a
// client certificate, as ClientAuth configures the webhook, with the error
// log net/http uses when controller-runtime leaves ErrorLog unset.
func TestStdlibLog_Write_refusedClient(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := SelfSignedCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("SelfSignedCert: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	clientAuth, err := ClientAuth(filepath.Join(dir, "ca.crt"), "")
	if err != nil {
		t.Fatalf("ClientAuth: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	clientAuth(srv.TLS)
	srv.Config.ErrorLog = log.New(StdlibLog{Log: logr.Discard()}, "", 0)
	srv.StartTLS()
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	before := handshakeErrorsTotal.Value()
	if resp, err := client.Post(srv.URL, "application/json", nil); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("a client without a certificate was heard: %s", resp.Status)
	}
	srv.Close() // waits for the server's connections, so the error is logged
	if got := handshakeErrorsTotal.Value() - before; got < 1 {
		t.Errorf("handshake errors rose by %v, want at least 1", got)
	}
}
