package admission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// serveOnce accepts one TLS connection on loopback with cfg, completes the
// handshake and answers "heard" to a client it accepted. It returns the
// address and a channel with the server side's handshake error.
func serveOnce(t *testing.T, cfg *tls.Config) (string, <-chan error) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	result := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			result <- err
			return
		}
		defer func() { _ = conn.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.(*tls.Conn).HandshakeContext(ctx); err != nil {
			result <- err
			return
		}
		_, err = conn.Write([]byte("heard"))
		result <- err
	}()
	return l.Addr().String(), result
}

func TestClientAuth_ClientAuth_handshakes(t *testing.T) {
	servingDir := t.TempDir()
	servingCA, err := SelfSignedCert(servingDir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.LoadX509KeyPair(filepath.Join(servingDir, CertFileName), filepath.Join(servingDir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(servingCA)

	clientCA := newTestCA(t, "apiserver client CA")
	otherCA := newTestCA(t, "someone else's CA")
	caFile := writeTestFile(t, t.TempDir(), "client-ca.crt", clientCA.pem)
	pair := func(ca *testCA, cn string, usage x509.ExtKeyUsage) []tls.Certificate {
		crt, key := ca.issue(t, cn, nil, usage)
		c, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	tests := []struct {
		name      string
		cn        string // --webhook-client-cn
		client    []tls.Certificate
		maxTLS    uint16
		wantHeard bool
	}{
		{name: "no client certificate", cn: "kube-apiserver"},
		{name: "no client certificate, TLS 1.2", cn: "kube-apiserver", maxTLS: tls.VersionTLS12},
		{name: "certificate from another CA", cn: "kube-apiserver", client: pair(otherCA, "kube-apiserver", x509.ExtKeyUsageClientAuth)},
		{name: "right CA, wrong common name", cn: "kube-apiserver", client: pair(clientCA, "mallory", x509.ExtKeyUsageClientAuth)},
		{name: "right CA, a server certificate", cn: "kube-apiserver", client: pair(clientCA, "kube-apiserver", x509.ExtKeyUsageServerAuth)},
		{name: "right CA, right common name", cn: "kube-apiserver", client: pair(clientCA, "kube-apiserver", x509.ExtKeyUsageClientAuth), wantHeard: true},
		{name: "right CA, no common name required", client: pair(clientCA, "anyone", x509.ExtKeyUsageClientAuth), wantHeard: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, err := ClientAuth(caFile, tt.cn)
			if err != nil {
				t.Fatal(err)
			}
			cfg := &tls.Config{Certificates: []tls.Certificate{serving}}
			opt(cfg)
			addr, serverErr := serveOnce(t, cfg)

			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
				RootCAs: roots, ServerName: "127.0.0.1", Certificates: tt.client, MaxVersion: tt.maxTLS,
			})
			var got []byte
			if err == nil {
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				got, err = io.ReadAll(conn)
				_ = conn.Close()
			}
			srvErr := <-serverErr
			heard := string(got) == "heard"
			if heard != tt.wantHeard {
				t.Fatalf("heard %v (client error %v, server handshake error %v), want %v", heard, err, srvErr, tt.wantHeard)
			}
			if tt.wantHeard {
				if srvErr != nil || err != nil {
					t.Errorf("accepted client: server error %v, client error %v", srvErr, err)
				}
				return
			}
			// Refused at TLS: the server's handshake failed, before a byte
			// of a request was read.
			if srvErr == nil {
				t.Error("the server completed the handshake with a client it must refuse")
			}
			if err == nil {
				t.Error("the client saw no error")
			}
		})
	}
}

func TestClientAuth_ClientAuth_badFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		file string
	}{
		{name: "no file name", file: ""},
		{name: "missing file", file: filepath.Join(dir, "absent.crt")},
		{name: "no PEM in the file", file: writeTestFile(t, dir, "junk.crt", []byte("not a certificate"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ClientAuth(tt.file, ""); err == nil {
				t.Error("no error")
			}
		})
	}
}
