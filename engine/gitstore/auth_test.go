package gitstore

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

func authTestKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	return signer
}

func TestAuthFromSecret_AuthFromSecret_http(t *testing.T) {
	tests := []struct {
		name       string
		url        string
		data       map[string][]byte
		wantUser   string
		wantPass   string
		wantNil    bool
		wantReason string
	}{
		{name: "username and password", url: "https://example.com/r.git",
			data:     map[string][]byte{"username": []byte("alice"), "password": []byte("pw-1")},
			wantUser: "alice", wantPass: "pw-1"},
		{name: "token with default user", url: "https://example.com/r.git",
			data:     map[string][]byte{"token": []byte("tok-1")},
			wantUser: "git", wantPass: "tok-1"},
		{name: "token with username", url: "http://example.com/r.git",
			data:     map[string][]byte{"token": []byte("tok-1"), "username": []byte("bot"), "password": []byte("ignored")},
			wantUser: "bot", wantPass: "tok-1"},
		{name: "no secret is anonymous", url: "https://example.com/r.git", wantNil: true},
		{name: "file URL needs nothing", url: "file:///tmp/r.git", data: map[string][]byte{}, wantNil: true},
		{name: "empty secret", url: "https://example.com/r.git", data: map[string][]byte{}, wantReason: ReasonInvalidSecret},
		{name: "password without username", url: "https://example.com/r.git",
			data: map[string][]byte{"password": []byte("pw-1")}, wantReason: ReasonInvalidSecret},
		{name: "username without password", url: "https://example.com/r.git",
			data: map[string][]byte{"username": []byte("alice")}, wantReason: ReasonInvalidSecret},
		{name: "unsupported scheme", url: "ftp://example.com/r.git", wantReason: ReasonInvalidURL},
		{name: "unparsable URL", url: "https://alice:pw-1@exa mple.com/%zz", wantReason: ReasonInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := AuthFromSecret(tt.url, tt.data)
			if tt.wantReason != "" {
				if got := ReasonOf(err); got != tt.wantReason {
					t.Fatalf("reason = %q (err %v), want %q", got, err, tt.wantReason)
				}
				assertNoSecret(t, err, tt.data, "pw-1")
				return
			}
			if err != nil {
				t.Fatalf("AuthFromSecret: %v", err)
			}
			if tt.wantNil {
				if auth != nil {
					t.Fatalf("auth = %v, want nil", auth)
				}
				return
			}
			basic, ok := auth.(*githttp.BasicAuth)
			if !ok {
				t.Fatalf("auth is %T, want *http.BasicAuth", auth)
			}
			if basic.Username != tt.wantUser || basic.Password != tt.wantPass {
				t.Fatalf("basic auth user %q, password matches: %v", basic.Username, basic.Password == tt.wantPass)
			}
		})
	}
}

// assertNoSecret fails when err's message contains any secret value.
func assertNoSecret(t *testing.T, err error, data map[string][]byte, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	values := append([]string{}, extra...)
	for k, v := range data {
		if k != SecretKeyUsername && k != SecretKeyKnownHosts && len(v) > 0 {
			values = append(values, string(v))
		}
	}
	for _, v := range values {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error %q contains a secret value", err)
		}
	}
}

func TestAuthFromSecret_AuthFromSecret_ssh(t *testing.T) {
	plainKey, _, err := gitserver.GenerateClientKey("")
	if err != nil {
		t.Fatalf("GenerateClientKey: %v", err)
	}
	encryptedKey, _, err := gitserver.GenerateClientKey("key-pass-1")
	if err != nil {
		t.Fatalf("GenerateClientKey: %v", err)
	}
	host := authTestKey(t).PublicKey()
	knownHostsData := []byte(knownhosts.Line([]string{"git.example.com:2222"}, host) + "\n")

	tests := []struct {
		name       string
		url        string
		data       map[string][]byte
		wantUser   string
		wantReason string
	}{
		{name: "plain key", url: "ssh://git.example.com:2222/r.git",
			data:     map[string][]byte{"identity": plainKey, "known_hosts": knownHostsData},
			wantUser: "git"},
		{name: "user from scp-like URL", url: "deploy@git.example.com:team/r.git",
			data:     map[string][]byte{"identity": plainKey, "known_hosts": knownHostsData},
			wantUser: "deploy"},
		{name: "encrypted key with password", url: "ssh://git@git.example.com:2222/r.git",
			data:     map[string][]byte{"identity": encryptedKey, "password": []byte("key-pass-1"), "known_hosts": knownHostsData},
			wantUser: "git"},
		{name: "encrypted key without password", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"identity": encryptedKey, "known_hosts": knownHostsData},
			wantReason: ReasonInvalidSecret},
		{name: "encrypted key with wrong password", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"identity": encryptedKey, "password": []byte("wrong-pass-9"), "known_hosts": knownHostsData},
			wantReason: ReasonInvalidSecret},
		{name: "no known_hosts", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"identity": plainKey},
			wantReason: ReasonInvalidSecret},
		{name: "blank known_hosts", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"identity": plainKey, "known_hosts": []byte("  \n# only a comment\n")},
			wantReason: ReasonInvalidSecret},
		{name: "garbage known_hosts", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"identity": plainKey, "known_hosts": []byte("host ssh-ed25519 !!!notbase64\n")},
			wantReason: ReasonInvalidSecret},
		{name: "no identity", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"known_hosts": knownHostsData},
			wantReason: ReasonInvalidSecret},
		{name: "identity not a key", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"identity": []byte("not-a-key-value"), "known_hosts": knownHostsData},
			wantReason: ReasonInvalidSecret},
		{name: "no secret", url: "ssh://git.example.com:2222/r.git", wantReason: ReasonInvalidSecret},
		{name: "https secret for ssh URL", url: "ssh://git.example.com:2222/r.git",
			data:       map[string][]byte{"token": []byte("tok-1")},
			wantReason: ReasonInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := AuthFromSecret(tt.url, tt.data)
			if tt.wantReason != "" {
				if got := ReasonOf(err); got != tt.wantReason {
					t.Fatalf("reason = %q (err %v), want %q", got, err, tt.wantReason)
				}
				assertNoSecret(t, err, tt.data)
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Fatalf("error %q quotes the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AuthFromSecret: %v", err)
			}
			keys, ok := auth.(*sshPublicKeys)
			if !ok {
				t.Fatalf("auth is %T, want *sshPublicKeys", auth)
			}
			if keys.User != tt.wantUser {
				t.Fatalf("user = %q, want %q", keys.User, tt.wantUser)
			}
			cfg, err := keys.ClientConfig()
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			if cfg.HostKeyCallback == nil || cfg.Timeout == 0 {
				t.Fatalf("client config lacks host key callback or timeout")
			}
		})
	}
}

func TestKnownHostsDB_hostKeyCallback_matching(t *testing.T) {
	good := authTestKey(t).PublicKey()
	other := authTestKey(t).PublicKey()
	line := func(hosts []string, key ssh.PublicKey) string { return knownhosts.Line(hosts, key) + "\n" }
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}

	tests := []struct {
		name        string
		knownHosts  string
		host        string
		key         ssh.PublicKey
		wantOK      bool
		wantKnown   bool
		wantRevoked bool
	}{
		{name: "port 22 plain name", knownHosts: line([]string{"git.example.com"}, good),
			host: "git.example.com:22", key: good, wantOK: true},
		{name: "non-default port", knownHosts: line([]string{"[127.0.0.1]:2222"}, good),
			host: "127.0.0.1:2222", key: good, wantOK: true},
		{name: "port must match", knownHosts: line([]string{"[127.0.0.1]:2223"}, good),
			host: "127.0.0.1:2222", key: good},
		{name: "case-insensitive host", knownHosts: line([]string{"Git.Example.COM"}, good),
			host: "git.example.com:22", key: good, wantOK: true},
		{name: "wrong key is a mismatch", knownHosts: line([]string{"git.example.com"}, good),
			host: "git.example.com:22", key: other, wantKnown: true},
		{name: "unknown host", knownHosts: line([]string{"other.example.com"}, good),
			host: "git.example.com:22", key: good},
		{name: "hashed name", knownHosts: line([]string{knownhosts.HashHostname("[127.0.0.1]:2222")}, good),
			host: "127.0.0.1:2222", key: good, wantOK: true},
		{name: "hashed name other host", knownHosts: line([]string{knownhosts.HashHostname("[127.0.0.2]:2222")}, good),
			host: "127.0.0.1:2222", key: good},
		{name: "wildcard", knownHosts: "*.example.com " + strings.SplitN(line([]string{"x"}, good), " ", 2)[1],
			host: "git.example.com:22", key: good, wantOK: true},
		{name: "negated pattern wins", knownHosts: "*.example.com,!git.example.com " + strings.SplitN(line([]string{"x"}, good), " ", 2)[1],
			host: "git.example.com:22", key: good},
		{name: "second of several lines", knownHosts: "# comment\n\n" + line([]string{"a.example.com"}, other) + line([]string{"git.example.com"}, good),
			host: "git.example.com:22", key: good, wantOK: true},
		{name: "revoked key", knownHosts: "@revoked * " + strings.SplitN(line([]string{"x"}, good), " ", 2)[1] + line([]string{"git.example.com"}, good),
			host: "git.example.com:22", key: good, wantRevoked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := parseKnownHosts([]byte(tt.knownHosts))
			if err != nil {
				t.Fatalf("parseKnownHosts: %v", err)
			}
			err = db.hostKeyCallback(tt.host, addr, tt.key)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("callback: %v", err)
				}
				return
			}
			var hkErr *HostKeyError
			if !errors.As(err, &hkErr) {
				t.Fatalf("error = %v, want *HostKeyError", err)
			}
			if hkErr.Known != tt.wantKnown || hkErr.Revoked != tt.wantRevoked {
				t.Fatalf("HostKeyError = %+v, want Known %v Revoked %v", hkErr, tt.wantKnown, tt.wantRevoked)
			}
		})
	}
}

func TestKnownHostsDB_hostKeyCallback_certificate(t *testing.T) {
	ca := authTestKey(t)
	hostSigner := authTestKey(t)
	cert := &ssh.Certificate{
		Key:             hostSigner.PublicKey(),
		CertType:        ssh.HostCert,
		ValidPrincipals: []string{"git.example.com"},
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatalf("sign cert: %v", err)
	}
	caLine := "@cert-authority *.example.com " + strings.SplitN(knownhosts.Line([]string{"x"}, ca.PublicKey()), " ", 2)[1] + "\n"
	db, err := parseKnownHosts([]byte(caLine))
	if err != nil {
		t.Fatalf("parseKnownHosts: %v", err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}
	if err := db.hostKeyCallback("git.example.com:22", addr, cert); err != nil {
		t.Fatalf("certificate signed by known CA refused: %v", err)
	}
	if err := db.hostKeyCallback("git.other.org:22", addr, cert); err == nil {
		t.Fatal("certificate accepted for a host the CA does not cover")
	}
	if algos := db.hostKeyAlgorithms("git.example.com:22"); algos != nil {
		t.Fatalf("hostKeyAlgorithms = %v, want nil for CA-covered host", algos)
	}
}

func TestKnownHostsDB_hostKeyAlgorithms_perHost(t *testing.T) {
	ed := authTestKey(t).PublicKey()
	data := knownhosts.Line([]string{"[127.0.0.1]:2222"}, ed) + "\n"
	db, err := parseKnownHosts([]byte(data))
	if err != nil {
		t.Fatalf("parseKnownHosts: %v", err)
	}
	tests := []struct {
		host string
		want []string
	}{
		{host: "127.0.0.1:2222", want: []string{ssh.KeyAlgoED25519}},
		{host: "127.0.0.1:22", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got := db.hostKeyAlgorithms(tt.host)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("hostKeyAlgorithms = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWildcardMatch_cases(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "anything", true},
		{"git.example.com", "git.example.com", true},
		{"*.example.com", "git.example.com", true},
		{"*.example.com", "example.com", false},
		{"git?.example.com", "git1.example.com", true},
		{"git?.example.com", "git.example.com", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"|"+tt.s, func(t *testing.T) {
			if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
				t.Fatalf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}
