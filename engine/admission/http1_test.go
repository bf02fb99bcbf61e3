package admission

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTP1Only_serves_http11 serves the handler as controller-runtime's
// webhook server does (its TLS config offers h2, then the TLS options run;
// tls.Listen and http.Server.Serve) to a client that prefers HTTP/2: with
// HTTP1Only the review is answered over HTTP/1.1, without it over HTTP/2.
func TestHTTP1Only_serves_http11(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := SelfSignedCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tests := []struct {
		name      string
		opts      []func(*tls.Config)
		wantProto string
	}{
		{"with HTTP1Only", []func(*tls.Config){HTTP1Only}, "HTTP/1.1"},
		{"controller-runtime's default", nil, "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHandler(Options{Index: testIndex(), Recorder: &recorder{}, QueueSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			cfg := &tls.Config{NextProtos: []string{"h2"}, Certificates: []tls.Certificate{pair}}
			for _, o := range tt.opts {
				o(cfg)
			}
			l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(func() { _ = srv.Close() })
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true,
			}}
			t.Cleanup(c.CloseIdleConnections)
			resp, err := c.Post("https://"+l.Addr().String()+Path, "application/json",
				strings.NewReader(reviewJSON(t, configMapRequest("UPDATE", true))))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.Proto != tt.wantProto || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"allowed":true`) {
				t.Fatalf("answered %s %d %s, want %s 200 allowed", resp.Proto, resp.StatusCode, body, tt.wantProto)
			}
		})
	}
}
