package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// signingKey is a key the operator signs with and what a reviewer needs to
// verify: git options and environment that trust the public key.
type signingKey struct {
	private    []byte
	verifyArgs []string
	verifyEnv  []string
}

// newSSHSigningKey generates an Ed25519 key in OpenSSH form and an
// allowed-signers file that trusts it for git.
func newSSHSigningKey() signingKey {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	block, err := ssh.MarshalPrivateKey(priv, "")
	Expect(err).NotTo(HaveOccurred())
	sshPub, err := ssh.NewPublicKey(pub)
	Expect(err).NotTo(HaveOccurred())
	allowed := filepath.Join(GinkgoT().TempDir(), "allowed_signers")
	line := `bot@reverser.test namespaces="git" ` + string(ssh.MarshalAuthorizedKey(sshPub))
	Expect(os.WriteFile(allowed, []byte(line), 0o600)).To(Succeed())
	return signingKey{
		private:    pem.EncodeToMemory(block),
		verifyArgs: []string{"-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile=" + allowed},
	}
}

// newOpenPGPSigningKey generates an OpenPGP key and a GnuPG home that
// trusts its public key.
func newOpenPGPSigningKey() signingKey {
	e, err := openpgp.NewEntity("gitops-reverser", "", "bot@reverser.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	Expect(err).NotTo(HaveOccurred())
	armored := func(kind string, write func(w io.Writer) error) []byte {
		var b bytes.Buffer
		w, err := armor.Encode(&b, kind, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(write(w)).To(Succeed())
		Expect(w.Close()).To(Succeed())
		return b.Bytes()
	}
	pub := armored(openpgp.PublicKeyType, e.Serialize)
	priv := armored(openpgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivateWithoutSigning(w, nil) })

	home, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket lives there
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		_ = os.RemoveAll(home)
	})
	env := append(os.Environ(), "GNUPGHOME="+home)
	for _, step := range []struct {
		stdin []byte
		arg   string
	}{
		{pub, "--import"},
		{[]byte(fmt.Sprintf("%X:6:\n", e.PrimaryKey.Fingerprint)), "--import-ownertrust"},
	} {
		cmd := exec.Command("gpg", "--batch", "--quiet", step.arg)
		cmd.Env, cmd.Stdin = env, bytes.NewReader(step.stdin)
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "gpg %s: %s", step.arg, out)
	}
	return signingKey{private: priv, verifyEnv: []string{"GNUPGHOME=" + home}}
}

// verify runs the real `git verify-commit` against the Git server's bare
// repository.
func (k signingKey) verify(repo, hash string) (string, error) {
	home := GinkgoT().TempDir()
	args := append(append([]string{}, k.verifyArgs...), "verify-commit", "--verbose", hash)
	cmd := exec.Command("git", args...)
	cmd.Dir = gitSrv.RepoPath(repo)
	cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"))
	cmd.Env = append(cmd.Env, k.verifyEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// signedWith puts key into the Secret named secret (creating it, or adding
// to the fixture's credentials Secret "git") and points the fixture's
// GitTarget at it. It runs before the fixture's rule exists, so no writer
// has opened the target yet.
func signedWith(secret string, key []byte) fixtureOption {
	return func(rule *v1alpha1.WatchRule) {
		ctx := context.Background()
		ns := rule.Namespace
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secret}}
		if secret == "git" {
			ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
			s.Data["signing.key"] = key
			ExpectWithOffset(1, k8s.Update(ctx, s)).To(Succeed())
		} else {
			s.Data = map[string][]byte{"signing.key": key}
			ExpectWithOffset(1, k8s.Create(ctx, s)).To(Succeed())
		}
		gt := &v1alpha1.GitTarget{}
		ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "history"}, gt)).To(Succeed())
		patch := client.MergeFrom(gt.DeepCopy())
		gt.Spec.Signing = &v1alpha1.SigningSpec{SecretRef: v1alpha1.LocalObjectReference{Name: secret}}
		ExpectWithOffset(1, k8s.Patch(ctx, gt, patch)).To(Succeed())
	}
}

// targetReady returns the fixture's GitTarget Ready condition as
// "Status/Reason: message".
func (f fixture) targetReady(ctx context.Context) string {
	gt := &v1alpha1.GitTarget{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "history"}, gt); err != nil {
		return err.Error()
	}
	c := meta.FindStatusCondition(gt.Status.Conditions, v1alpha1.ReadyCondition)
	if c == nil || c.ObservedGeneration != gt.Generation {
		return "no current condition"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

// aliceCommit makes alice create a ConfigMap and returns the commit that
// recorded it.
func (f fixture) aliceCommit() string {
	mustKubectl("alice", "-n", f.ns, "create", "configmap", "signed", "--from-literal=color=blue")
	cm := f.path("", "configmaps", "signed")
	Eventually(func() string { return f.file(cm) }).Should(ContainSubstring("color: blue"))
	commits := f.commitsTouching(cm)
	Expect(commits).NotTo(BeEmpty())
	Expect(commits[0].AuthorName).To(Equal("alice"))
	return commits[0].Hash
}

var _ = Describe("Signed commits", func() {
	var ctx context.Context
	BeforeEach(func() {
		ctx = context.Background()
		// A missing verifier is a failure, never a skip (.ci/run installs
		// openssh-client and gnupg).
		_, err := exec.LookPath("ssh-keygen")
		Expect(err).NotTo(HaveOccurred(), "ssh-keygen (openssh-client) is needed to verify SSH signatures")
	})

	It("signs alice's commit with the GitTarget's SSH key, and git verify-commit accepts it", func() {
		key := newSSHSigningKey()
		f := newFixture(ctx, signedWith("signing", key.private))
		Eventually(func() string { return f.targetReady(ctx) }).Should(
			And(HavePrefix("True/"), ContainSubstring("commits are signed with SSH ssh-ed25519 key SHA256:")))
		hash := f.aliceCommit()
		out, err := key.verify(f.repo, hash)
		Expect(err).NotTo(HaveOccurred(), "git verify-commit %s:\n%s", hash, out)
		Expect(out).To(ContainSubstring(`Good "git" signature`))

		other := newSSHSigningKey()
		out, err = other.verify(f.repo, hash)
		Expect(err).To(HaveOccurred(), "another key must not verify the commit:\n%s", out)
	})

	It("signs with an OpenPGP key kept in the credentials Secret", func() {
		_, err := exec.LookPath("gpg")
		Expect(err).NotTo(HaveOccurred(), "gpg (gnupg) is needed to verify OpenPGP signatures")
		key := newOpenPGPSigningKey()
		f := newFixture(ctx, signedWith("git", key.private))
		Eventually(func() string { return f.targetReady(ctx) }).Should(ContainSubstring("commits are signed with OpenPGP key"))
		hash := f.aliceCommit()
		out, err := key.verify(f.repo, hash)
		Expect(err).NotTo(HaveOccurred(), "git verify-commit %s:\n%s", hash, out)
		Expect(out).To(ContainSubstring("Good signature"))
	})

	It("leaves commits unsigned when the GitTarget has no signing key", func() {
		key := newSSHSigningKey()
		f := newFixture(ctx)
		hash := f.aliceCommit()
		out, err := key.verify(f.repo, hash)
		Expect(err).To(HaveOccurred(), "an unsigned commit must not verify:\n%s", out)
		raw, err := exec.Command("git", "-C", gitSrv.RepoPath(f.repo), "cat-file", "commit", hash).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(raw))
		Expect(string(raw)).NotTo(ContainSubstring("gpgsig"))
	})

	It("reports InvalidSigningKey without key material, and signs once the Secret is fixed", func() {
		bad := []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n")
		f := newFixtureWaiting(ctx, "False/TargetNotReady", signedWith("signing", bad))
		var ready string
		Eventually(func() string { ready = f.targetReady(ctx); return ready }).Should(HavePrefix("False/InvalidSigningKey: "))
		Expect(ready).To(ContainSubstring(`signing Secret "signing"`))
		Expect(ready).NotTo(ContainSubstring("c2VjcmV0LWJ1dC1ub3QtYS1rZXk"))

		key := newSSHSigningKey()
		s := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "signing"}, s)).To(Succeed())
		s.Data["signing.key"] = key.private
		Expect(k8s.Update(ctx, s)).To(Succeed())
		Eventually(func() string { return f.targetReady(ctx) }).Should(HavePrefix("True/"))
		Eventually(func() string {
			wr := &v1alpha1.WatchRule{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "record"}, wr)).To(Succeed())
			c := meta.FindStatusCondition(wr.Status.Conditions, v1alpha1.ReadyCondition)
			if c == nil {
				return ""
			}
			return c.Reason
		}).Should(Equal(v1alpha1.ReasonRuleActive))
		Eventually(func() bool { return op.Synced(ctx) }).Should(BeTrue())
		waitWebhookCalled(f.ns, true)

		hash := f.aliceCommit()
		out, err := key.verify(f.repo, hash)
		Expect(err).NotTo(HaveOccurred(), "git verify-commit %s:\n%s", hash, out)
		Expect(strings.TrimSpace(out)).NotTo(BeEmpty())
	})
})
