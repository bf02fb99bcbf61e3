package secrets

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/e2e/e2ekit"
)

// aliceSecrets are the names of the Secrets alice creates, one per type.
var aliceSecrets = []string{"opaque", "regcred", "web-tls", "basic"}

// randomValue is a value no file could hold by chance.
func randomValue(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// createAliceSecrets creates, as alice with the real kubectl, a Secret of
// each of the types Opaque, kubernetes.io/dockerconfigjson,
// kubernetes.io/tls and kubernetes.io/basic-auth, and returns every value
// a file must never hold in plain text.
func createAliceSecrets(ns string) []string {
	GinkgoHelper()
	k := kubectl()
	password, token := randomValue("pw"), randomValue("tok")
	registryPassword, basicPassword := randomValue("reg"), randomValue("basic")
	k.Must("alice", "-n", ns, "create", "secret", "generic", "opaque",
		"--from-literal=password="+password, "--from-literal=api-token="+token)
	k.Must("alice", "-n", ns, "create", "secret", "docker-registry", "regcred", "--docker-server=registry.example.test",
		"--docker-username=robot", "--docker-password="+registryPassword, "--docker-email=robot@example.test")
	dir := GinkgoT().TempDir()
	certPEM, keyPEM := selfSigned()
	certFile := e2ekit.WriteFile(dir, "tls.crt", string(certPEM), 0o600)
	keyFile := e2ekit.WriteFile(dir, "tls.key", string(keyPEM), 0o600)
	k.Must("alice", "-n", ns, "create", "secret", "tls", "web-tls", "--cert="+certFile, "--key="+keyFile)
	basic := e2ekit.WriteFile(dir, "basic.yaml", `apiVersion: v1
kind: Secret
metadata:
  name: basic
type: kubernetes.io/basic-auth
stringData:
  username: deployer
  password: `+basicPassword+"\n", 0o600)
	k.Must("alice", "-n", ns, "apply", "-f", basic)

	needles := []string{password, token, registryPassword, basicPassword}
	for _, name := range aliceSecrets {
		for _, v := range secretData(ns, name) {
			needles = append(needles, string(v), base64.StdEncoding.EncodeToString(v))
		}
	}
	// The private key's lines too: a file holding part of it leaks.
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 20 && !strings.HasPrefix(line, "-----") {
			needles = append(needles, line)
		}
	}
	return needles
}

// secretData is the Secret's data as the API server holds it.
func secretData(ns, name string) map[string][]byte {
	GinkgoHelper()
	s := &corev1.Secret{}
	Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	return s.Data
}

func selfSigned() (certPEM, keyPEM []byte) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"web.example.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// sopsDecrypt runs the real `sops -d` on a file's content with the age
// identity in SOPS_AGE_KEY and returns the Secret it decrypts to.
func sopsDecrypt(content string, id *age.X25519Identity) (*corev1.Secret, error) {
	out, err := sopsDecryptRaw(content, id)
	if err != nil {
		return nil, err
	}
	s := &corev1.Secret{}
	if err := yaml.UnmarshalStrict([]byte(out), s); err != nil {
		return nil, err
	}
	return s, nil
}

// sopsDecryptRaw runs the real `sops -d` and returns what it prints.
func sopsDecryptRaw(content string, id *age.X25519Identity) (string, error) {
	dir := GinkgoT().TempDir()
	file := filepath.Join(dir, "secret.yaml")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		return "", err
	}
	cmd := exec.Command(sopsBin, "--decrypt", "--input-type", "yaml", "--output-type", "yaml", file)
	cmd.Env = []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "SOPS_AGE_KEY=" + id.String(), "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &sopsError{err: err, stderr: stderr.String()}
	}
	return string(out), nil
}

type sopsError struct {
	err    error
	stderr string
}

func (e *sopsError) Error() string { return e.err.Error() + ": " + e.stderr }

// leaks returns the needles found in any blob of the repository's history,
// reachable or not.
func leaks(t e2ekit.Target, needles []string) []string {
	var found []string
	for hash, blob := range t.Git.AllBlobs(t.Repo) {
		for _, n := range needles {
			if bytes.Contains(blob, []byte(n)) {
				found = append(found, hash+" holds "+n[:min(len(n), 12)]+"...")
			}
		}
	}
	return found
}

func encryptTo(recipients ...string) func(*v1alpha1.GitTarget) {
	return func(gt *v1alpha1.GitTarget) {
		gt.Spec.Encryption = &v1alpha1.EncryptionSpec{Age: v1alpha1.AgeEncryption{Recipients: recipients}, SopsConfig: true}
	}
}

func encryptSecrets(r *v1alpha1.WatchRule) { r.Spec.Secrets = v1alpha1.SecretEncrypt }

// encryptionCondition is the GitTarget's Encryption condition as
// "Status/Reason: message" for its current generation.
func encryptionCondition(ctx context.Context, t e2ekit.Target) string {
	gt := &v1alpha1.GitTarget{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: e2ekit.GitTargetName}, gt); err != nil {
		return err.Error()
	}
	for _, c := range gt.Status.Conditions {
		if c.Type == v1alpha1.EncryptionCondition && c.ObservedGeneration == gt.Generation {
			return string(c.Status) + "/" + c.Reason + ": " + c.Message
		}
	}
	return "no condition"
}

var _ = Describe("Secrets encrypted with SOPS (age)", func() {
	It("writes every type of Secret so that the real `sops -d` restores alice's values, never a value in any blob, and rewrites only what changed", func(ctx SpecContext) {
		id, err := age.GenerateX25519Identity()
		Expect(err).NotTo(HaveOccurred())
		other, err := age.GenerateX25519Identity()
		Expect(err).NotTo(HaveOccurred())
		t := newTarget(ctx, encryptTo(id.Recipient().String(), other.Recipient().String()), func(r *v1alpha1.WatchRule) {
			encryptSecrets(r)
			r.Spec.Resources = append(r.Spec.Resources, v1alpha1.ResourceSelector{APIGroups: []string{"example.com"}, Resources: []string{"databasecredentials"}})
			r.Spec.SecretFields = []v1alpha1.SecretFieldSelector{{APIGroup: "example.com", Kind: "DatabaseCredentials", Paths: []string{"spec.password"}}}
		})
		needles := createAliceSecrets(t.Namespace)
		dbPassword := randomValue("dbpw")
		needles = append(needles, dbPassword, base64.StdEncoding.EncodeToString([]byte(dbPassword)))
		creds := e2ekit.WriteFile(GinkgoT().TempDir(), "creds.yaml", `apiVersion: example.com/v1
kind: DatabaseCredentials
metadata:
  name: orders
spec:
  host: db.example.test
  password: `+dbPassword+"\n", 0o600)
		kubectl().Must("alice", "-n", t.Namespace, "apply", "-f", creds)

		By("each committed file decrypts with sops -d to the values the API server holds")
		for _, name := range aliceSecrets {
			p := t.Path("", "secrets", name)
			Eventually(func(g Gomega) {
				content := t.File(p)
				g.Expect(content).To(ContainSubstring("ENC[AES256_GCM,data:"), "%s is not encrypted yet", p)
				s, err := sopsDecrypt(content, id)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(s.Data).To(Equal(secretData(t.Namespace, name)), "%s decrypts to other values", p)
				g.Expect(s.Name).To(Equal(name))
			}).Should(Succeed())
			Expect(t.AuthorsOf(p)).To(ContainElement("alice"), "%s was written by the reconcile instead of alice's change", p)
		}
		By("a secret-shaped resource's named field is encrypted too, the rest readable")
		credsPath := t.Path("example.com", "databasecredentials", "orders")
		Eventually(func(g Gomega) {
			content := t.File(credsPath)
			g.Expect(content).To(ContainSubstring("host: db.example.test"))
			g.Expect(content).To(ContainSubstring("password: ENC[AES256_GCM,data:"))
			out, err := sopsDecryptRaw(content, id)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).To(ContainSubstring("password: " + dbPassword))
		}).Should(Succeed())

		opaque := t.Path("", "secrets", "opaque")
		_, err = sopsDecrypt(t.File(opaque), other)
		Expect(err).NotTo(HaveOccurred(), "the second recipient cannot decrypt")
		stranger, err := age.GenerateX25519Identity()
		Expect(err).NotTo(HaveOccurred())
		_, err = sopsDecrypt(t.File(opaque), stranger)
		Expect(err).To(HaveOccurred(), "an identity that is not a recipient decrypted the file")
		Expect(t.File(opaque)).To(ContainSubstring("name: opaque"), "metadata is not readable")
		Eventually(func() string { return t.File(e2ekit.BasePath + "/.sops.yaml") }).Should(
			ContainSubstring(id.Recipient().String()), "no .sops.yaml with the recipients at the base path")

		By("a write that changes nothing Git shows makes no commit; bob's change of one key changes that file only")
		before := len(t.CommitsTouching(opaque))
		others := map[string]int{}
		for _, name := range aliceSecrets[1:] {
			others[name] = len(t.CommitsTouching(t.Path("", "secrets", name)))
		}
		// An annotation the sanitizer drops: a real write, a watch event
		// and a render of the same plaintext.
		kubectl().Must("alice", "-n", t.Namespace, "annotate", "secret", "opaque", "deployment.kubernetes.io/revision=7")
		newPassword := randomValue("pw2")
		needles = append(needles, newPassword, base64.StdEncoding.EncodeToString([]byte(newPassword)))
		// Another author closes alice's session at once: had her no-op
		// written new ciphertext, it would be a commit of its own.
		kubectl().Must("bob", "-n", t.Namespace, "patch", "secret", "opaque", "--type=merge",
			"-p", `{"stringData":{"password":"`+newPassword+`"}}`)
		Eventually(func(g Gomega) {
			s, err := sopsDecrypt(t.File(opaque), id)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(s.Data["password"])).To(Equal(newPassword))
		}).Should(Succeed())
		commits := t.CommitsTouching(opaque)
		Expect(commits).To(HaveLen(before+1), "the unchanged Secret made a commit")
		Expect(commits[0].AuthorName).To(Equal("bob"), "%+v", commits[0])
		changed, err := t.Git.ChangedFiles(t.Repo, commits[0].Hash)
		Expect(err).NotTo(HaveOccurred())
		Expect(changed).To(Equal([]string{opaque}), "changing one key changed other files")
		for name, n := range others {
			Expect(t.CommitsTouching(t.Path("", "secrets", name))).To(HaveLen(n), "%s changed", name)
		}

		By("no plain or base64 value in any blob of the history")
		Expect(leaks(t, needles)).To(BeEmpty())
	})

	It("writes no Secret while a recipient is malformed or missing, says so on the rule, and writes it once the recipient is fixed", func(ctx SpecContext) {
		id, err := age.GenerateX25519Identity()
		Expect(err).NotTo(HaveOccurred())
		for _, tc := range []struct {
			name       string
			recipients []string
			message    string
		}{
			{"missing", nil, "no age recipient configured"},
			{"malformed", []string{"age1thisisnotakey"}, "age recipient 1"},
		} {
			By("a " + tc.name + " recipient")
			edit := func(*v1alpha1.GitTarget) {}
			if tc.recipients != nil {
				edit = encryptTo(tc.recipients...)
			}
			t := newTarget(ctx, edit, encryptSecrets)
			value := randomValue("leak")
			kubectl().Must("alice", "-n", t.Namespace, "create", "secret", "generic", "db", "--from-literal=password="+value)
			kubectl().Must("alice", "-n", t.Namespace, "create", "configmap", "settings", "--from-literal=mode=blue")
			Eventually(func() string { return t.RuleReady(ctx) }).Should(Equal("False/EncryptionFailed"))
			wr := &v1alpha1.WatchRule{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: e2ekit.RuleName}, wr)).To(Succeed())
			var msg string
			for _, c := range wr.Status.Conditions {
				if c.Type == v1alpha1.ReadyCondition {
					msg = c.Message
				}
			}
			Expect(msg).To(ContainSubstring(tc.message))
			Expect(msg).NotTo(ContainSubstring(value))
			if tc.recipients != nil {
				Eventually(func() string { return encryptionCondition(ctx, t) }).Should(HavePrefix("False/InvalidRecipient"))
			}
			// The rule still records everything else.
			Eventually(func() string { return t.File(t.Path("", "configmaps", "settings")) }).Should(ContainSubstring("mode: blue"))
			Expect(t.File(t.Path("", "secrets", "db"))).To(BeEmpty(), "a Secret was written without encryption")
			Expect(leaks(t, []string{value, base64.StdEncoding.EncodeToString([]byte(value))})).To(BeEmpty())

			if tc.recipients == nil {
				continue // the fix is the same as for the malformed one
			}
			By("fixing the GitTarget's recipients writes the Secret encrypted and clears the condition")
			gt := &v1alpha1.GitTarget{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: e2ekit.GitTargetName}, gt)).To(Succeed())
			encryptTo(id.Recipient().String())(gt)
			Expect(k8s.Update(ctx, gt)).To(Succeed())
			Eventually(func(g Gomega) {
				s, err := sopsDecrypt(t.File(t.Path("", "secrets", "db")), id)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(string(s.Data["password"])).To(Equal(value))
			}).Should(Succeed())
			Eventually(func() string { return t.RuleReady(ctx) }).Should(Equal("True/RuleActive"))
			Expect(encryptionCondition(ctx, t)).To(HavePrefix("True/RecipientsValid"))
			Expect(leaks(t, []string{value, base64.StdEncoding.EncodeToString([]byte(value))})).To(BeEmpty())
		}
	})
})

var _ = Describe("Redacted Secrets (the default)", func() {
	It("records every type of Secret so that each file re-applies to an API server with kubectl apply --dry-run=server", func(ctx SpecContext) {
		t := newTarget(ctx, nil, nil)
		needles := createAliceSecrets(t.Namespace)
		// A fresh namespace of the same API server stands for a fresh API
		// server: validation (ValidateSecret per type) and admission do
		// not depend on the namespace, and no object of these names
		// exists there, so each apply is a create, as on a new cluster.
		restore := t.Namespace + "-restore"
		kubectl().Must("", "create", "namespace", restore)
		dir := GinkgoT().TempDir()
		var applied []string
		for _, name := range aliceSecrets {
			p := t.Path("", "secrets", name)
			Eventually(func() string { return t.File(p) }).Should(ContainSubstring("name: "+name), "%s is not recorded", p)
			content := t.File(p)
			Expect(content).To(ContainSubstring("namespace: " + t.Namespace + "\n"))
			file := e2ekit.WriteFile(dir, name+".yaml", strings.Replace(content, "namespace: "+t.Namespace+"\n", "namespace: "+restore+"\n", 1), 0o600)
			out := kubectl().Must("alice", "apply", "--dry-run=server", "-f", file)
			Expect(out).To(ContainSubstring("created (server dry run)"), "%s: %s", p, out)
			applied = append(applied, name)
		}
		sort.Strings(applied)
		Expect(applied).To(HaveLen(4))

		By("the redacted docker config keeps its structure")
		reg := &corev1.Secret{}
		Expect(yaml.Unmarshal([]byte(t.File(t.Path("", "secrets", "regcred"))), reg)).To(Succeed())
		Expect(string(reg.Data[".dockerconfigjson"])).To(Equal(
			`{"auths":{"registry.example.test":{"auth":"REDACTED","email":"REDACTED","password":"REDACTED","username":"REDACTED"}}}`))

		By("the marker the redaction wrote before is refused, so the apply above can fail")
		old := e2ekit.WriteFile(dir, "old.yaml", `apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: `+restore+`
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: UkVEQUNURUQ=
`, 0o600)
		out, err := kubectl().Run("alice", "apply", "--dry-run=server", "-f", old)
		Expect(err).To(HaveOccurred(), out)

		Expect(leaks(t, needles)).To(BeEmpty())
	})
})
