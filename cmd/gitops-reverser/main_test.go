package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
)

// TestRun_run_refusesBadWebhookFlags: flag and certificate errors stop the
// manager before it connects to a cluster (the kubeconfig named here does
// not exist), with a message that names the flag.
func TestRun_run_refusesBadWebhookFlags(t *testing.T) {
	caDir := t.TempDir()
	if _, err := admission.SelfSignedCert(caDir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(caDir, admission.CAFileName)
	junk := filepath.Join(caDir, "junk.pem")
	if err := os.WriteFile(junk, []byte("no certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "client CN without client CA", args: []string{"--webhook-client-cn", "kube-apiserver"}, wantErr: "--webhook-client-cn needs --webhook-client-ca-file"},
		{name: "client CA file missing", args: []string{"--webhook-client-ca-file", filepath.Join(caDir, "absent.crt")}, wantErr: "--webhook-client-ca-file"},
		{name: "client CA file without PEM", args: []string{"--webhook-client-ca-file", junk}, wantErr: "no PEM certificate"},
		{name: "CA file but no certificate in the cert dir", args: []string{"--webhook-ca-file", caFile, "--webhook-cert-dir", t.TempDir()}, wantErr: "holds no tls.crt"},
		{name: "malformed service", args: []string{"--webhook-service", "nonamespace"}, wantErr: "want namespace/name"},
		{name: "malformed leader pod", args: []string{"--leader-pod", "noname/"}, wantErr: "--leader-pod"},
		{name: "malformed cert Secret", args: []string{"--webhook-cert-secret", "nonamespace"}, wantErr: "--webhook-cert-secret"},
		{name: "cert Secret and a CA file", args: []string{"--webhook-cert-secret", "sys/cert", "--webhook-ca-file", caFile}, wantErr: "drop --webhook-ca-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			workDir := t.TempDir()
			args := append([]string{"--work-dir", workDir, "--kubeconfig", filepath.Join(workDir, "absent-kubeconfig")}, tt.args...)
			err := run(args)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRun_run_certDirDefault: without --webhook-cert-dir the certificate
// and its CA go to <work-dir>/webhook-certs, and a restart reads the CA
// back instead of making a new certificate.
func TestRun_run_certDirDefault(t *testing.T) {
	workDir := t.TempDir()
	args := []string{"--work-dir", workDir, "--kubeconfig", filepath.Join(workDir, "absent-kubeconfig"), "--webhook-client-cn", "x"}
	if err := run(args); err == nil {
		t.Fatal("want the client CN error")
	}
	dir := filepath.Join(workDir, "webhook-certs")
	first, err := os.ReadFile(filepath.Join(dir, admission.CertFileName))
	if err != nil {
		t.Fatalf("no certificate in the default cert dir: %v", err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, admission.CAFileName))
	if err != nil {
		t.Fatalf("no ca.crt beside the certificate: %v", err)
	}
	if err := run(args); err == nil {
		t.Fatal("want the client CN error")
	}
	again, err := os.ReadFile(filepath.Join(dir, admission.CertFileName))
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(first) {
		t.Error("a restart replaced a usable certificate")
	}
	if err := admission.VerifyServingCert(again, ca, "127.0.0.1"); err != nil {
		t.Errorf("the kept certificate does not verify against ca.crt: %v", err)
	}
}

// TestStartCPUProfile_segments: a SIGUSR1 writes the profile so far to
// <file>.1 and starts a new one; stopping writes <file>. Both are pprof
// profiles (gzip).
func TestStartCPUProfile_segments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	stop, err := startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(path + ".1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no segment file after SIGUSR1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	for _, name := range []string{path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: not a gzipped pprof profile", name)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}
