package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// operatorLog holds everything the operator logged during the suite (the
// logger of suite_test.go writes to it and to GinkgoWriter).
var operatorLog = &lockedBuffer{}

// lockedBuffer is a bytes.Buffer safe for the operator's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secretForms are a value in plain text and in base64, as a Secret holds it.
func secretForms(values ...string) []string {
	var out []string
	for _, v := range values {
		out = append(out, v, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return out
}

// applySecret applies a Secret with stringData as user, the way people do
// (kubectl apply), so the value is also in the last-applied annotation.
func applySecret(user, ns, name, key, value string) {
	manifest := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\nstringData:\n  %s: %q\n", name, ns, key, value)
	file := filepath.Join(GinkgoT().TempDir(), name+".yaml")
	ExpectWithOffset(1, os.WriteFile(file, []byte(manifest), 0o600)).To(Succeed())
	mustKubectl(user, "apply", "-f", file)
}

// expectNowhere fails when any of forms is in a condition of the namespace's
// rule, an event of the namespace, or the operator's log.
func expectNowhere(ctx context.Context, ns string, forms []string) {
	rule := &v1alpha1.WatchRule{}
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "record"}, rule)).To(Succeed())
	var seen []string
	for _, c := range rule.Status.Conditions {
		seen = append(seen, "condition "+c.Type+": "+c.Message)
	}
	events := &corev1.EventList{}
	ExpectWithOffset(1, k8s.List(ctx, events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		seen = append(seen, "event "+e.Reason+": "+e.Message)
	}
	seen = append(seen, "operator log: "+operatorLog.String())
	for _, s := range seen {
		for _, f := range forms {
			ExpectWithOffset(1, strings.Contains(s, f)).To(BeFalse(), "%q found in %.300s", f, s)
		}
	}
}

var _ = Describe("Nothing of an object's content reaches a condition, an event or a log", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("keeps a Secret's values out of a failing policy's condition, the log and the commits", func() {
		// The policy makes a label key of the password: a decision of the
		// wrong type, whose OPA message names the key.
		failing := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			r.Spec.Policy = &v1alpha1.PolicyReference{Inline: "package reverser\n\n" +
				"labels[input.object.data.password] := 1 if input.kind.kind == \"Secret\"\n\n" +
				"labels[input.oldObject.data.password] := 2 if input.operation == \"DELETE\"\n"}
		})
		// This one copies the password into its reasons, which the
		// operator logs for an ignored change.
		copying := newFixture(ctx, func(r *v1alpha1.WatchRule) {
			r.Spec.Policy = &v1alpha1.PolicyReference{Inline: "package reverser\n\n" +
				"ignore contains sprintf(\"new password %s\", [input.object.data.password]) if input.kind.kind == \"Secret\"\n\n" +
				"ignore contains sprintf(\"old password %s\", [input.oldObject.data.password]) if input.operation == \"DELETE\"\n"}
		})
		const first, second = "pw-7Kq2-Zx9-first-LEAK", "pw-3Hm8-Wv4-second-LEAK"
		forms := secretForms(first, second)

		applySecret("alice", failing.ns, "db", "password", first)
		Eventually(func() string { return failing.file(failing.path("", "secrets", "db")) }).Should(ContainSubstring("password:"))
		applySecret("alice", failing.ns, "db", "password", second)
		Eventually(ruleCondition(ctx, failing.ns)).Should(And(Not(BeNil()),
			HaveField("Reason", v1alpha1.ReasonPolicyEvaluationFailed),
			HaveField("Message", ContainSubstring("invalid decision: data.reverser.labels holds a value of type number"))))
		// A DELETE hands the Secret to the policy as oldObject.
		mustKubectl("alice", "-n", failing.ns, "delete", "secret", "db")
		Eventually(func() string { return failing.file(failing.path("", "secrets", "db")) }).Should(BeEmpty())

		// The copying policy saw the marker, never the value, in object
		// (CREATE, UPDATE). A DELETE is never handed to a policy (deletes
		// are always recorded, docs/policies.md), so it cannot leak there.
		applySecret("alice", copying.ns, "db", "password", first)
		Eventually(operatorLog.String).Should(ContainSubstring("new password UkVEQUNURUQ="))
		applySecret("alice", copying.ns, "db", "password", second)
		mustKubectl("alice", "-n", copying.ns, "delete", "secret", "db")
		Expect(copying.file(copying.path("", "secrets", "db"))).To(BeEmpty(), "the policy ignored every write")

		for _, f := range []fixture{failing, copying} {
			expectNowhere(ctx, f.ns, forms)
			for _, c := range gitSrv.Log(f.repo, "main") {
				for _, v := range forms {
					Expect(c.Message).NotTo(ContainSubstring(v))
				}
			}
		}
	})

	It("does not show the digest of a Secret key named as a module source", func() {
		const value = "pw-5Tn1-Qe6-digest-LEAK"
		sum := sha256.Sum256([]byte(value))
		digest := hex.EncodeToString(sum[:])
		guess := sha256.Sum256([]byte("pw-guess"))
		f := newFixtureWaiting(ctx, "False/ModuleInvalid", func(r *v1alpha1.WatchRule) {
			Expect(k8s.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: "db"},
				Data:       map[string][]byte{"password": []byte(value)},
			})).To(Succeed())
			r.Spec.Sanitizers = []v1alpha1.ModuleReference{{Name: "probe", Source: v1alpha1.ModuleSource{
				SecretRef: &v1alpha1.KeyReference{Name: "db", Key: "password"},
				SHA256:    hex.EncodeToString(guess[:]),
			}}}
		})
		Expect(ruleCondition(ctx, f.ns)()).To(HaveField("Message", And(
			ContainSubstring("DigestMismatch"), ContainSubstring("does not match the pinned digest"))))
		expectNowhere(ctx, f.ns, append(secretForms(value), digest))
	})

	It("keeps credentials in a GitTarget's URL out of its conditions, events and the log", func() {
		// net/http quotes the failing URL with its user name (masking only
		// a password), and a token is often given as the user name.
		const token, user, password = "Tok3n-as-user-LEAK", "url-user-LEAK", "pw-in-url-LEAK"
		fixtureCount++
		ns := fmt.Sprintf("e2e-%d", fixtureCount)
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		urls := map[string]string{
			"token":    "https://" + token + "@127.0.0.1:1/r.git",
			"password": "http://" + user + ":" + password + "@127.0.0.1:1/r.git",
		}
		for name, url := range urls {
			Expect(k8s.Create(ctx, &v1alpha1.GitTarget{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec:       v1alpha1.GitTargetSpec{URL: url, Branch: "main"},
			})).To(Succeed())
		}
		for name := range urls {
			Eventually(func() string {
				gt := &v1alpha1.GitTarget{}
				if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, gt); err != nil {
					return err.Error()
				}
				for _, c := range gt.Status.Conditions {
					if c.Type == v1alpha1.ReadyCondition {
						return c.Reason + ": " + c.Message
					}
				}
				return ""
			}).Should(And(HavePrefix(v1alpha1.ReasonRemoteUnreachable+": "), ContainSubstring("***@127.0.0.1:1")))
		}
		var seen []string
		targets := &v1alpha1.GitTargetList{}
		Expect(k8s.List(ctx, targets, client.InNamespace(ns))).To(Succeed())
		for _, gt := range targets.Items {
			for _, c := range gt.Status.Conditions {
				seen = append(seen, "condition "+c.Type+": "+c.Message)
			}
		}
		events := &corev1.EventList{}
		Expect(k8s.List(ctx, events, client.InNamespace(ns))).To(Succeed())
		Expect(events.Items).NotTo(BeEmpty())
		for _, e := range events.Items {
			seen = append(seen, "event "+e.Reason+": "+e.Message)
		}
		seen = append(seen, "operator log: "+operatorLog.String())
		for _, s := range seen {
			for _, secret := range []string{token, user, password} {
				Expect(strings.Contains(s, secret)).To(BeFalse(), "%q found in %.300s", secret, s)
			}
		}
	})
})
