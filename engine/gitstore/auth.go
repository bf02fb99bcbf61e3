package gitstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // known_hosts hashed names are HMAC-SHA1 by format.
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// Keys of the credentials Secret (GitTarget.spec.secretRef).
const (
	// SecretKeyUsername is the HTTPS user name.
	SecretKeyUsername = "username"
	// SecretKeyPassword is the HTTPS password, or the passphrase of an
	// encrypted SSH identity.
	SecretKeyPassword = "password"
	// SecretKeyToken is an HTTPS access token, sent as the basic auth
	// password.
	SecretKeyToken = "token"
	// SecretKeyIdentity is a PEM encoded SSH private key.
	SecretKeyIdentity = "identity"
	// SecretKeyKnownHosts holds known_hosts lines for the SSH server;
	// required, since host keys are always verified.
	SecretKeyKnownHosts = "known_hosts"
)

// Defaults for names the Secret or URL may leave out.
const (
	// DefaultTokenUsername is the basic auth user name sent with a token
	// when the Secret has no username.
	DefaultTokenUsername = "git"
	// DefaultSSHUser is the SSH user when the URL names none.
	DefaultSSHUser = "git"
	// sshDialTimeout bounds the TCP connect of an SSH transport, which
	// go-git does not tie to the caller's context.
	sshDialTimeout = 30 * time.Second
)

// AuthFromSecret builds the go-git authentication for rawURL from the data
// of the credentials Secret.
//
// A nil data map means no Secret is referenced: HTTP(S) and file URLs then
// go without authentication, while SSH URLs fail because known_hosts is
// required. For HTTP(S), the keys are `token` (with `username` or
// DefaultTokenUsername) or `username` and `password`. For SSH, the keys are
// `identity`, `known_hosts` and, for an encrypted identity, `password`; the
// SSH user comes from the URL or is DefaultSSHUser.
//
// Errors are *RemoteError with Reason InvalidURL (unparsable URL or
// unsupported scheme) or InvalidSecret (missing or unusable keys). They
// name keys, never their values.
func AuthFromSecret(rawURL string, data map[string][]byte) (transport.AuthMethod, error) {
	ep, err := parseEndpoint(rawURL)
	if err != nil {
		return nil, newRemoteError(ReasonInvalidURL, rawURL, "", err)
	}
	switch ep.Protocol {
	case "http", "https":
		auth, err := httpAuth(data)
		if err != nil {
			return nil, newRemoteError(ReasonInvalidSecret, rawURL, "", err)
		}
		return auth, nil
	case "ssh":
		auth, err := sshAuth(ep, data)
		if err != nil {
			return nil, newRemoteError(ReasonInvalidSecret, rawURL, "", err)
		}
		return auth, nil
	default: // file
		return nil, nil
	}
}

// parseEndpoint parses a remote URL and accepts only the schemes a
// GitTarget may use.
func parseEndpoint(rawURL string) (*transport.Endpoint, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included; keep only
		// the cause (the URL is named, redacted, by RemoteError).
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	switch ep.Protocol {
	case "http", "https", "ssh", "file":
		return ep, nil
	default:
		return nil, fmt.Errorf("unsupported scheme %q: use https://, http://, ssh://, user@host:path or file://", ep.Protocol)
	}
}

func httpAuth(data map[string][]byte) (transport.AuthMethod, error) {
	if data == nil {
		return nil, nil
	}
	username := string(data[SecretKeyUsername])
	if token := string(data[SecretKeyToken]); token != "" {
		if username == "" {
			username = DefaultTokenUsername
		}
		return &githttp.BasicAuth{Username: username, Password: token}, nil
	}
	password := string(data[SecretKeyPassword])
	switch {
	case username == "" && password == "":
		return nil, fmt.Errorf("secret has neither key %q nor keys %q and %q", SecretKeyToken, SecretKeyUsername, SecretKeyPassword)
	case username == "":
		return nil, fmt.Errorf("secret has key %q but no key %q", SecretKeyPassword, SecretKeyUsername)
	case password == "":
		return nil, fmt.Errorf("secret has key %q but neither key %q nor key %q", SecretKeyUsername, SecretKeyPassword, SecretKeyToken)
	}
	return &githttp.BasicAuth{Username: username, Password: password}, nil
}

func sshAuth(ep *transport.Endpoint, data map[string][]byte) (transport.AuthMethod, error) {
	if data == nil {
		return nil, fmt.Errorf("SSH URLs need a secret with keys %q and %q", SecretKeyIdentity, SecretKeyKnownHosts)
	}
	identity := data[SecretKeyIdentity]
	if len(identity) == 0 {
		return nil, fmt.Errorf("secret has no key %q (a PEM private key)", SecretKeyIdentity)
	}
	knownHosts := data[SecretKeyKnownHosts]
	if len(bytes.TrimSpace(knownHosts)) == 0 {
		return nil, fmt.Errorf("secret has no key %q; host keys are always verified", SecretKeyKnownHosts)
	}
	signer, err := parseIdentity(identity, data[SecretKeyPassword])
	if err != nil {
		return nil, err
	}
	db, err := parseKnownHosts(knownHosts)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", SecretKeyKnownHosts, err)
	}
	user := ep.User
	if user == "" {
		user = DefaultSSHUser
	}
	port := ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(port))
	keys := &gitssh.PublicKeys{User: user, Signer: signer}
	keys.HostKeyCallback = db.hostKeyCallback
	keys.HostKeyAlgorithms = db.hostKeyAlgorithms(hostPort)
	return &sshPublicKeys{PublicKeys: keys}, nil
}

// parseIdentity parses a PEM private key, decrypting it with passphrase
// when it is encrypted. Parser errors are not wrapped: they could quote
// key material in future versions, and a key name says enough.
func parseIdentity(identity, passphrase []byte) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey(identity)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing):
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("key %q is encrypted and the secret has no key %q", SecretKeyIdentity, SecretKeyPassword)
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(identity, passphrase)
		if err != nil {
			return nil, fmt.Errorf("key %q cannot be decrypted with key %q", SecretKeyIdentity, SecretKeyPassword)
		}
		return signer, nil
	default:
		return nil, fmt.Errorf("key %q is not a PEM private key", SecretKeyIdentity)
	}
}

// sshPublicKeys is go-git's public key auth with a bounded TCP connect.
type sshPublicKeys struct {
	*gitssh.PublicKeys
}

// ClientConfig returns the SSH client configuration with a dial timeout.
func (a *sshPublicKeys) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("ssh client config: %w", err)
	}
	cfg.Timeout = sshDialTimeout
	return cfg, nil
}

// HostKeyError is returned (wrapped) by SSH connections whose server
// presents a host key that the known_hosts data does not accept.
type HostKeyError struct {
	// Host is the host:port the client dialled.
	Host string
	// Fingerprint is the SHA256 fingerprint of the key the server offered.
	Fingerprint string
	// Known is true when known_hosts lists other keys for the host (a
	// mismatch, possibly an attack) and false when it lists none.
	Known bool
	// Revoked is true when known_hosts marks the offered key @revoked.
	Revoked bool
}

// Error says which host failed verification and why.
func (e *HostKeyError) Error() string {
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key %s of %s is revoked in known_hosts", e.Fingerprint, e.Host)
	case e.Known:
		return fmt.Sprintf("host key mismatch for %s: server offered %s, which known_hosts does not list", e.Host, e.Fingerprint)
	default:
		return fmt.Sprintf("host %s is not in known_hosts (server offered %s)", e.Host, e.Fingerprint)
	}
}

// knownHost is one known_hosts line.
type knownHost struct {
	marker   string // "", "cert-authority" or "revoked"
	patterns []string
	key      ssh.PublicKey
}

// knownHostsDB verifies host keys against known_hosts data held in memory,
// with OpenSSH's matching rules: plain and [host]:port names, hashed names
// (|1|salt|hash), * and ? wildcards, !negation, @revoked and
// @cert-authority lines.
type knownHostsDB struct {
	hosts []knownHost
}

func parseKnownHosts(data []byte) (*knownHostsDB, error) {
	db := &knownHostsDB{}
	rest := data
	for line := 1; len(bytes.TrimSpace(rest)) > 0; line++ {
		marker, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", line, err)
		}
		db.hosts = append(db.hosts, knownHost{marker: marker, patterns: hosts, key: key})
		rest = next
	}
	if len(db.hosts) == 0 {
		return nil, errors.New("no host keys")
	}
	return db, nil
}

// hostKeyCallback implements ssh.HostKeyCallback.
func (db *knownHostsDB) hostKeyCallback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	fingerprint := ssh.FingerprintSHA256(key)
	for _, h := range db.hosts {
		if h.marker == "revoked" && keysEqual(h.key, key) {
			return &HostKeyError{Host: hostname, Fingerprint: fingerprint, Revoked: true}
		}
	}
	if _, isCert := key.(*ssh.Certificate); isCert {
		checker := &ssh.CertChecker{
			IsHostAuthority: func(auth ssh.PublicKey, address string) bool {
				return db.isAuthority(auth, address)
			},
			IsRevoked: func(cert *ssh.Certificate) bool {
				return db.isRevoked(cert.SignatureKey)
			},
		}
		if err := checker.CheckHostKey(hostname, remote, key); err != nil {
			return fmt.Errorf("host certificate of %s: %w", hostname, err)
		}
		return nil
	}
	known := false
	for _, h := range db.hosts {
		if h.marker != "" || !matchHost(h.patterns, hostname) {
			continue
		}
		if keysEqual(h.key, key) {
			return nil
		}
		known = true
	}
	return &HostKeyError{Host: hostname, Fingerprint: fingerprint, Known: known}
}

func (db *knownHostsDB) isAuthority(auth ssh.PublicKey, address string) bool {
	for _, h := range db.hosts {
		if h.marker == "cert-authority" && keysEqual(h.key, auth) && matchHost(h.patterns, address) {
			return true
		}
	}
	return false
}

func (db *knownHostsDB) isRevoked(key ssh.PublicKey) bool {
	for _, h := range db.hosts {
		if h.marker == "revoked" && keysEqual(h.key, key) {
			return true
		}
	}
	return false
}

// hostKeyAlgorithms lists the algorithms of the plain keys known for
// hostPort, so that a server with several host keys presents one we can
// verify. It returns nil (the library default) when a certificate
// authority covers the host or no key is known.
func (db *knownHostsDB) hostKeyAlgorithms(hostPort string) []string {
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, h := range db.hosts {
		if !matchHost(h.patterns, hostPort) {
			continue
		}
		switch h.marker {
		case "cert-authority":
			return nil
		case "":
			if h.key.Type() == ssh.KeyAlgoRSA {
				// An RSA key signs with SHA-2 on modern servers.
				add(ssh.KeyAlgoRSASHA512)
				add(ssh.KeyAlgoRSASHA256)
			}
			add(h.key.Type())
		}
	}
	return algos
}

func keysEqual(a, b ssh.PublicKey) bool {
	return bytes.Equal(a.Marshal(), b.Marshal())
}

// matchHost reports whether hostPort ("host:port") matches a known_hosts
// pattern list: some positive pattern matches and no negated one does.
func matchHost(patterns []string, hostPort string) bool {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		host, port = hostPort, "22"
	}
	host = strings.ToLower(host)
	// The form OpenSSH writes and hashes: bare host for port 22.
	normalized := host
	if port != "22" {
		normalized = "[" + host + "]:" + port
	}
	matched := false
	for _, p := range patterns {
		negated := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		var ok bool
		if strings.HasPrefix(p, "|1|") {
			ok = matchHashed(p, normalized)
		} else {
			ok = matchPattern(strings.ToLower(p), host, port)
		}
		if ok && negated {
			return false
		}
		matched = matched || ok
	}
	return matched
}

// matchPattern matches host and port against "pattern" (port 22) or
// "[pattern]:port", where pattern may use * and ?.
func matchPattern(p, host, port string) bool {
	pHost, pPort := p, "22"
	if strings.HasPrefix(p, "[") {
		end := strings.LastIndex(p, "]:")
		if end < 0 {
			return false
		}
		pHost, pPort = p[1:end], p[end+2:]
	}
	return pPort == port && wildcardMatch(pHost, host)
}

// wildcardMatch matches s against pattern with * (any run) and ? (any one
// character), iteratively with backtracking to the last *.
func wildcardMatch(pattern, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			pi++
			si++
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// matchHashed matches a hashed name "|1|base64(salt)|base64(hmac)".
func matchHashed(p, host string) bool {
	parts := strings.Split(p, "|")
	if len(parts) != 4 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	want, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(host))
	return hmac.Equal(mac.Sum(nil), want)
}
