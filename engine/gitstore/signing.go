package gitstore

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Keys of a signing Secret.
const (
	// SecretKeySigningKey holds the private key that signs commits: an
	// armored OpenPGP key or an OpenSSH (PEM) key.
	SecretKeySigningKey = "signing.key"
	// SecretKeySigningPassphrase holds the passphrase of an encrypted
	// signing key.
	SecretKeySigningPassphrase = "signing.passphrase"
)

// sshNamespace is the SSHSIG namespace git signs and verifies commits in.
const sshNamespace = "git"

// Signer signs a commit: it receives the commit encoded without signature
// and returns the armored signature that git keeps in the commit's gpgsig
// header. Its method set is go-git's git.Signer.
type Signer interface {
	Sign(message io.Reader) ([]byte, error)
}

// Credentials are what a target's Secrets give its Writer: how to
// authenticate to the remote, and the key that signs commits.
type Credentials struct {
	// Auth authenticates fetch and push; nil for none.
	Auth transport.AuthMethod
	// Signer signs commits; nil leaves them unsigned.
	Signer Signer
}

// KeySigner is a Signer holding one private key, OpenPGP or SSH.
type KeySigner struct {
	sign func(io.Reader) ([]byte, error)
	desc string
}

// Sign implements Signer.
func (s *KeySigner) Sign(message io.Reader) ([]byte, error) {
	sig, err := s.sign(message)
	if err != nil {
		return nil, fmt.Errorf("signing with %s: %w", s.desc, err)
	}
	return sig, nil
}

// String names the key by its public parts only, e.g. "OpenPGP key
// 0123…" or "SSH ssh-ed25519 key SHA256:…": safe for conditions and logs.
func (s *KeySigner) String() string { return s.desc }

// SignerFromSecret reads the signing key (and its passphrase, if any) of a
// signing Secret. Errors name what is wrong, never any key material.
func SignerFromSecret(data map[string][]byte) (*KeySigner, error) {
	key := data[SecretKeySigningKey]
	if len(bytes.TrimSpace(key)) == 0 {
		return nil, fmt.Errorf("the Secret has no %q key", SecretKeySigningKey)
	}
	return ParseSigningKey(key, data[SecretKeySigningPassphrase])
}

// ParseSigningKey parses an armored OpenPGP private key ("-----BEGIN PGP
// PRIVATE KEY BLOCK-----") or an SSH private key in OpenSSH or PEM form,
// decrypting it with passphrase when it is encrypted. Errors never contain
// key material.
func ParseSigningKey(key, passphrase []byte) (*KeySigner, error) {
	switch {
	case bytes.Contains(key, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")):
		return parseOpenPGPKey(key, passphrase)
	case bytes.Contains(key, []byte("PRIVATE KEY-----")):
		return parseSSHKey(key, passphrase)
	case bytes.Contains(key, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")):
		return nil, errors.New("the signing key is an OpenPGP public key; a private key is needed")
	default:
		return nil, errors.New("the signing key is neither an armored OpenPGP private key nor an SSH private key")
	}
}

func parseOpenPGPKey(key, passphrase []byte) (*KeySigner, error) {
	// ReadArmoredKeyRing reads the first armor block only.
	if n := bytes.Count(key, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")); n > 1 {
		return nil, fmt.Errorf("the OpenPGP signing key holds %d key blocks, want exactly one", n)
	}
	entities, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(key))
	if err != nil {
		return nil, fmt.Errorf("reading the OpenPGP signing key: %w", err)
	}
	if len(entities) != 1 {
		return nil, fmt.Errorf("the OpenPGP signing key holds %d keys, want exactly one", len(entities))
	}
	e := entities[0]
	k, ok := e.SigningKey(time.Now())
	if !ok {
		return nil, errors.New("the OpenPGP key has no signing key that is valid now (expired, revoked or without the sign flag)")
	}
	if k.PrivateKey == nil || k.PrivateKey.Dummy() {
		return nil, errors.New("the OpenPGP key lacks the private part of its signing key")
	}
	if k.PrivateKey.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("the OpenPGP signing key is encrypted and the Secret has no %q", SecretKeySigningPassphrase)
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, errors.New("the passphrase does not decrypt the OpenPGP signing key")
		}
	}
	desc := fmt.Sprintf("OpenPGP key %X", e.PrimaryKey.Fingerprint)
	return &KeySigner{desc: desc, sign: func(message io.Reader) ([]byte, error) {
		var b bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&b, e, message, nil); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}}, nil
}

func parseSSHKey(key, passphrase []byte) (*KeySigner, error) {
	signer, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("the SSH signing key is encrypted and the Secret has no %q", SecretKeySigningPassphrase)
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(key, passphrase)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, errors.New("the passphrase does not decrypt the SSH signing key")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the SSH signing key: %w", err)
	}
	pub := signer.PublicKey()
	desc := fmt.Sprintf("SSH %s key %s", pub.Type(), ssh.FingerprintSHA256(pub))
	return &KeySigner{desc: desc, sign: func(message io.Reader) ([]byte, error) {
		sig, err := sshsig.Sign(message, signer, sshsig.HashSHA512, sshNamespace)
		if err != nil {
			return nil, err
		}
		return sshsig.Armor(sig), nil
	}}, nil
}

// signCommit sets c's signature: signer signs the commit as encoded without
// one, the bytes git verifies against.
func signCommit(signer Signer, c *object.Commit) error {
	payload := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(payload); err != nil {
		return fmt.Errorf("encode commit for signing: %w", err)
	}
	r, err := payload.Reader()
	if err != nil {
		return fmt.Errorf("encode commit for signing: %w", err)
	}
	defer r.Close()
	sig, err := signer.Sign(r)
	if err != nil {
		return fmt.Errorf("sign commit: %w", err)
	}
	c.PGPSignature = string(sig)
	return nil
}
