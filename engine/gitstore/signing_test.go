package gitstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"
)

// testKey is a generated signing key: the private key as a Secret holds it
// and what a reviewer verifies with.
type testKey struct {
	private    []byte
	passphrase []byte
	// verifyArgs and verifyEnv make the git CLI trust the public key.
	verifyArgs []string
	verifyEnv  []string
}

// newOpenPGPKey generates an Ed25519 OpenPGP key, encrypted with
// passphrase unless it is empty, and a GnuPG home that holds its public
// key with ultimate trust.
func newOpenPGPKey(tb testing.TB, passphrase string) testKey {
	tb.Helper()
	e, err := openpgp.NewEntity("gitops-reverser", "", "operator@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		tb.Fatalf("generate OpenPGP key: %v", err)
	}
	var pub bytes.Buffer
	aw, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Serialize(aw); err != nil {
		tb.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		tb.Fatal(err)
	}
	if passphrase != "" {
		if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			tb.Fatal(err)
		}
	}
	var priv bytes.Buffer
	aw, err = armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		tb.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		tb.Fatal(err)
	}

	k := testKey{private: priv.Bytes(), passphrase: []byte(passphrase)}
	if _, err := exec.LookPath("gpg"); err != nil {
		return k // parse-only tests do not need gpg
	}
	// gpg-agent's socket path must be short: not under t.TempDir().
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		_ = os.RemoveAll(home)
	})
	env := append(os.Environ(), "GNUPGHOME="+home)
	gpg := func(stdin []byte, args ...string) {
		cmd := exec.Command("gpg", append([]string{"--batch", "--quiet"}, args...)...)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
	}
	gpg(pub.Bytes(), "--import")
	gpg([]byte(fmt.Sprintf("%X:6:\n", e.PrimaryKey.Fingerprint)), "--import-ownertrust")
	k.verifyEnv = []string{"GNUPGHOME=" + home}
	return k
}

// newSSHKey generates an SSH key of kind ("ed25519", "rsa", "ecdsa-pem"),
// encrypted with passphrase unless it is empty, and an allowed-signers
// file that trusts it.
func newSSHKey(tb testing.TB, kind, passphrase string) testKey {
	tb.Helper()
	var priv, pub any
	var err error
	switch kind {
	case "ed25519":
		pub, priv, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		var k *rsa.PrivateKey
		k, err = rsa.GenerateKey(rand.Reader, 2048)
		if k != nil {
			priv, pub = k, &k.PublicKey
		}
	case "ecdsa-pem":
		var k *ecdsa.PrivateKey
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if k != nil {
			priv, pub = k, &k.PublicKey
		}
	default:
		tb.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		tb.Fatalf("generate %s key: %v", kind, err)
	}
	var block *pem.Block
	switch {
	case kind == "ecdsa-pem":
		der, merr := x509.MarshalECPrivateKey(priv.(*ecdsa.PrivateKey))
		block, err = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}, merr
	case passphrase != "":
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	default:
		block, err = ssh.MarshalPrivateKey(priv, "")
	}
	if err != nil {
		tb.Fatalf("marshal %s key: %v", kind, err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	allowed := filepath.Join(tb.TempDir(), "allowed_signers")
	line := `operator@example.com namespaces="git" ` + string(ssh.MarshalAuthorizedKey(sshPub))
	if err := os.WriteFile(allowed, []byte(line), 0o600); err != nil {
		tb.Fatal(err)
	}
	return testKey{
		private:    pem.EncodeToMemory(block),
		passphrase: []byte(passphrase),
		verifyArgs: []string{"-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile=" + allowed},
	}
}

// verifyCommit runs the real `git verify-commit` in repo and returns its
// output and error.
func (k testKey) verifyCommit(repo, hash string) (string, error) {
	args := append(append([]string{}, k.verifyArgs...), "verify-commit", "--verbose", hash)
	cmd := exec.Command("git", args...)
	cmd.Dir = repo
	cmd.Env = append(gitEnv(os.TempDir()), k.verifyEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// openSigned opens a writer that signs with signer on a new bare remote
// (its clone in dir; "" keeps it in memory).
func openSigned(t *testing.T, signer Signer, dir string) (*Writer, string) {
	t.Helper()
	remote := newBareRemote(t)
	w, err := Open(context.Background(), Config{URL: remote, Branch: "main", Dir: dir, Committer: testCommitter(), Signer: signer})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w, remote
}

// commitAndPush commits alice's first file and pushes it; it returns the
// commit's hash.
func commitAndPush(t *testing.T, w *Writer) string {
	t.Helper()
	h := commitFiles(t, w, "alice", "first", map[string]string{"a.yaml": "a: 1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	return h
}

// requireTool fails the test when a verifying tool is missing: as for the
// control-plane binaries, a missing tool is a failure, never a skip
// (.ci/run installs gnupg and openssh-client).
func requireTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Fatalf("%s is needed to verify signatures (apt-get install gnupg openssh-client, as .ci/run does): %v", name, err)
	}
}

func TestParseSigningKey_ParseSigningKey_formats(t *testing.T) {
	tests := []struct {
		name     string
		key      func(testing.TB) testKey
		wantDesc string
	}{
		{"openpgp", func(tb testing.TB) testKey { return newOpenPGPKey(tb, "") }, "OpenPGP key "},
		{"openpgp encrypted", func(tb testing.TB) testKey { return newOpenPGPKey(tb, "s3cret") }, "OpenPGP key "},
		{"openssh ed25519", func(tb testing.TB) testKey { return newSSHKey(tb, "ed25519", "") }, "SSH ssh-ed25519 key SHA256:"},
		{"openssh ed25519 encrypted", func(tb testing.TB) testKey { return newSSHKey(tb, "ed25519", "s3cret") }, "SSH ssh-ed25519 key SHA256:"},
		{"openssh rsa", func(tb testing.TB) testKey { return newSSHKey(tb, "rsa", "") }, "SSH ssh-rsa key SHA256:"},
		{"pem ecdsa", func(tb testing.TB) testKey { return newSSHKey(tb, "ecdsa-pem", "") }, "SSH ecdsa-sha2-nistp256 key SHA256:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.key(t)
			s, err := SignerFromSecret(map[string][]byte{
				SecretKeySigningKey: k.private, SecretKeySigningPassphrase: k.passphrase,
			})
			if err != nil {
				t.Fatalf("SignerFromSecret: %v", err)
			}
			if !strings.HasPrefix(s.String(), tt.wantDesc) {
				t.Errorf("String() = %q, want prefix %q", s.String(), tt.wantDesc)
			}
			sig, err := s.Sign(strings.NewReader("tree 0000\n"))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if !bytes.HasPrefix(sig, []byte("-----BEGIN ")) {
				t.Errorf("signature is not armored: %.40q", sig)
			}
		})
	}
}

func TestParseSigningKey_SignerFromSecret_errors(t *testing.T) {
	pgpEncrypted := newOpenPGPKey(t, "right")
	sshEncrypted := newSSHKey(t, "ed25519", "right")
	pgpPlain := newOpenPGPKey(t, "")
	twoKeys := append(append([]byte{}, pgpPlain.private...), newOpenPGPKey(t, "").private...)
	pgpPublic := []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n-----END PGP PUBLIC KEY BLOCK-----\n")
	corruptSSH := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n")
	tests := []struct {
		name    string
		data    map[string][]byte
		wantErr string
	}{
		{"no key", map[string][]byte{"token": []byte("x")}, `has no "signing.key"`},
		{"blank key", map[string][]byte{SecretKeySigningKey: []byte(" \n")}, `has no "signing.key"`},
		{"not a key", map[string][]byte{SecretKeySigningKey: []byte("hello")}, "neither an armored OpenPGP private key nor an SSH private key"},
		{"public key", map[string][]byte{SecretKeySigningKey: pgpPublic}, "OpenPGP public key"},
		{"two OpenPGP keys", map[string][]byte{SecretKeySigningKey: twoKeys}, "holds 2 key blocks"},
		{"openpgp no passphrase", map[string][]byte{SecretKeySigningKey: pgpEncrypted.private}, `encrypted and the Secret has no "signing.passphrase"`},
		{"openpgp wrong passphrase", map[string][]byte{SecretKeySigningKey: pgpEncrypted.private, SecretKeySigningPassphrase: []byte("wrong")}, "passphrase does not decrypt the OpenPGP"},
		{"ssh no passphrase", map[string][]byte{SecretKeySigningKey: sshEncrypted.private}, `encrypted and the Secret has no "signing.passphrase"`},
		{"ssh wrong passphrase", map[string][]byte{SecretKeySigningKey: sshEncrypted.private, SecretKeySigningPassphrase: []byte("wrong")}, "passphrase does not decrypt the SSH"},
		{"ssh corrupt", map[string][]byte{SecretKeySigningKey: corruptSSH}, "reading the SSH signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SignerFromSecret(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SignerFromSecret error = %v, want it to contain %q", err, tt.wantErr)
			}
			// Nothing of the key or passphrase may reach a condition.
			for _, v := range tt.data {
				for _, line := range strings.Split(string(v), "\n") {
					if len(line) >= 8 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
						t.Errorf("error %q contains secret material %q", err, line)
					}
				}
			}
		})
	}
}

// TestWriter_Push_signedCommitsVerify signs with each key format and checks
// with the real git CLI that every commit we made verifies: a normal
// commit, and one replayed onto a human's commit after a rejected push.
func TestWriter_Push_signedCommitsVerify(t *testing.T) {
	requireGit(t)
	tests := []struct {
		name string
		tool string
		key  func(testing.TB) testKey
	}{
		{"openpgp", "gpg", func(tb testing.TB) testKey { return newOpenPGPKey(tb, "s3cret") }},
		{"ssh ed25519", "ssh-keygen", func(tb testing.TB) testKey { return newSSHKey(tb, "ed25519", "") }},
		{"ssh rsa", "ssh-keygen", func(tb testing.TB) testKey { return newSSHKey(tb, "rsa", "s3cret") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireTool(t, tt.tool)
			k := tt.key(t)
			signer, err := ParseSigningKey(k.private, k.passphrase)
			if err != nil {
				t.Fatalf("ParseSigningKey: %v", err)
			}
			w, remote := openSigned(t, signer, t.TempDir())
			commitAndPush(t, w)
			human := humanClone(t, remote)
			humanHash := humanCommitAndPush(t, human, "human edit", map[string]string{"h.yaml": "h: 1\n"})
			commitFiles(t, w, "bob", "second", map[string]string{"b.yaml": "b: 1\n"})
			res, err := w.Push(context.Background())
			if err != nil {
				t.Fatalf("Push after human commit: %v", err)
			}
			if res.Replayed != 1 {
				t.Fatalf("Replayed = %d, want 1 (the push must have been rejected and replayed)", res.Replayed)
			}

			log := strings.Fields(runGit(t, remote, "log", "--format=%H", "main"))
			if len(log) != 3 || log[1] != humanHash {
				t.Fatalf("remote history = %v, want ours, the human's %s, ours", log, humanHash)
			}
			for _, h := range []string{log[0], log[2]} {
				if out, err := k.verifyCommit(remote, h); err != nil {
					t.Errorf("git verify-commit %s: %v\n%s", h, err, out)
				}
			}
			if out, err := k.verifyCommit(remote, humanHash); err == nil {
				t.Errorf("git verify-commit accepted the human's unsigned commit:\n%s", out)
			}
			fsck(t, remote)
		})
	}
}

func TestWriter_Commit_unsignedWithoutSigner(t *testing.T) {
	requireTool(t, "ssh-keygen")
	k := newSSHKey(t, "ed25519", "")
	remote := newBareRemote(t)
	w := openWriter(t, remote, t.TempDir())
	h := commitAndPush(t, w)
	if raw := runGit(t, remote, "cat-file", "commit", h); strings.Contains(raw, "gpgsig") {
		t.Errorf("commit has a signature header without a signer:\n%s", raw)
	}
	if out, err := k.verifyCommit(remote, h); err == nil {
		t.Errorf("git verify-commit accepted an unsigned commit:\n%s", out)
	}
}

func TestWriter_Commit_otherKeyDoesNotVerify(t *testing.T) {
	requireTool(t, "ssh-keygen")
	ours, other := newSSHKey(t, "ed25519", ""), newSSHKey(t, "ed25519", "")
	signer, err := ParseSigningKey(ours.private, nil)
	if err != nil {
		t.Fatalf("ParseSigningKey: %v", err)
	}
	w, remote := openSigned(t, signer, "")
	h := commitAndPush(t, w)
	if out, err := ours.verifyCommit(remote, h); err != nil {
		t.Fatalf("git verify-commit with our key: %v\n%s", err, out)
	}
	if out, err := other.verifyCommit(remote, h); err == nil {
		t.Errorf("git verify-commit accepted the commit with another key:\n%s", out)
	}
}

func TestCheckRemote_CheckRemote_createBranchSignsRootCommit(t *testing.T) {
	requireTool(t, "ssh-keygen")
	k := newSSHKey(t, "ed25519", "")
	signer, err := ParseSigningKey(k.private, nil)
	if err != nil {
		t.Fatalf("ParseSigningKey: %v", err)
	}
	srv := remoteTestServer(t)
	url := srv.HTTPURL("empty.git")
	auth, err := AuthFromSecret(url, httpSecret(srv))
	if err != nil {
		t.Fatalf("AuthFromSecret: %v", err)
	}
	state, err := CheckRemote(remoteTestContext(t), RemoteSpec{URL: url, Branch: "main", CreateBranch: true, Signer: signer}, auth)
	if err != nil || !state.BranchCreated {
		t.Fatalf("CheckRemote = %+v, %v; want the branch created", state, err)
	}
	if out, err := k.verifyCommit(srv.RepoPath("empty.git"), state.Head); err != nil {
		t.Errorf("git verify-commit of the root commit: %v\n%s", err, out)
	}
}

// BenchmarkWriter_Commit_signed measures what signing adds to a commit of
// one file in a small in-memory repository:
//
//	go test -run '^$' -bench 'Commit_signed' -benchmem ./engine/gitstore/
func BenchmarkWriter_Commit_signed(b *testing.B) {
	keys := []struct {
		name string
		key  func(testing.TB) testKey
	}{
		{"unsigned", nil},
		{"ssh-ed25519", func(tb testing.TB) testKey { return newSSHKey(tb, "ed25519", "") }},
		{"ssh-rsa-2048", func(tb testing.TB) testKey { return newSSHKey(tb, "rsa", "") }},
		{"openpgp-ed25519", func(tb testing.TB) testKey { return newOpenPGPKey(tb, "") }},
	}
	for _, k := range keys {
		b.Run(k.name, func(b *testing.B) {
			cfg := Config{URL: newBareRemote(b), Branch: "main", Committer: testCommitter()}
			if k.key != nil {
				tk := k.key(b)
				s, err := ParseSigningKey(tk.private, tk.passphrase)
				if err != nil {
					b.Fatal(err)
				}
				cfg.Signer = s
			}
			w, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = w.Close() })
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				_, err := w.Commit(context.Background(), CommitRequest{
					Author:  Signature{Name: "alice"},
					Message: "bench",
					Changes: []FileChange{{Path: "ns/cm.yaml", Content: []byte(fmt.Sprintf("n: %d\n", i))}},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWriter_Push_toolMadeKeysVerify runs the key-creation steps of
// docs/signing.md with the real ssh-keygen and gpg, signs with the keys they
// made, and verifies as the doc tells a reviewer to.
func TestWriter_Push_toolMadeKeysVerify(t *testing.T) {
	requireGit(t)
	tests := []struct {
		name string
		tool string
		make func(t *testing.T, dir string) testKey
	}{
		{"ssh-keygen ed25519", "ssh-keygen", func(t *testing.T, dir string) testKey {
			key := filepath.Join(dir, "reverser-signing")
			if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-C", "gitops-reverser", "-N", "", "-f", key).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v\n%s", err, out)
			}
			priv, err := os.ReadFile(key)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := os.ReadFile(key + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			allowed := filepath.Join(dir, "allowed_signers")
			if err := os.WriteFile(allowed, []byte(`gitops-reverser namespaces="git" `+string(pub)), 0o600); err != nil {
				t.Fatal(err)
			}
			// No gpg.format=ssh: git recognises an SSH signature by itself.
			return testKey{private: priv, verifyArgs: []string{"-c", "gpg.ssh.allowedSignersFile=" + allowed}}
		}},
		{"gpg ed25519 with passphrase", "gpg", func(t *testing.T, _ string) testKey {
			home, err := os.MkdirTemp("", "gpg")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
				_ = os.RemoveAll(home)
			})
			gpg := func(args ...string) []byte {
				cmd := exec.Command("gpg", append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", "pw"}, args...)...)
				cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
				}
				return stdout.Bytes()
			}
			gpg("--quick-gen-key", "gitops-reverser <gitops-reverser@cluster.local>", "ed25519", "sign", "never")
			priv := gpg("--armor", "--export-secret-keys", "gitops-reverser@cluster.local")
			return testKey{private: priv, passphrase: []byte("pw"), verifyEnv: []string{"GNUPGHOME=" + home}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireTool(t, tt.tool)
			k := tt.make(t, t.TempDir())
			signer, err := SignerFromSecret(map[string][]byte{SecretKeySigningKey: k.private, SecretKeySigningPassphrase: k.passphrase})
			if err != nil {
				t.Fatalf("SignerFromSecret: %v", err)
			}
			w, remote := openSigned(t, signer, "")
			h := commitAndPush(t, w)
			if out, err := k.verifyCommit(remote, h); err != nil {
				t.Errorf("git verify-commit: %v\n%s", err, out)
			}
		})
	}
}
