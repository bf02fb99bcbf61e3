package lifecycle

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

// configMapList is a YAML list of n ConfigMaps cm-0..cm-(n-1) whose key v
// holds value, from the index first on.
func configMapList(ns string, first, n int, value string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-%d\n    namespace: %s\n  data:\n    v: %q\n", i, ns, value)
	}
	return b.String()
}

// applyAs applies the ConfigMaps as user with the real kubectl.
func applyAs(user, ns string, first, n int, value string) {
	GinkgoHelper()
	f := writeFile(GinkgoT().TempDir(), "cms.yaml", configMapList(ns, first, n, value))
	mustKubectl(user, "apply", "-f", f)
}

// synced returns the GitTarget's Synced condition as "Status/Reason: message".
func (t target) synced(ctx context.Context) string {
	gt := &v1alpha1.GitTarget{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "history"}, gt); err != nil {
		return err.Error()
	}
	c := meta.FindStatusCondition(gt.Status.Conditions, v1alpha1.SyncedCondition)
	if c == nil {
		return "none"
	}
	return string(c.Status) + "/" + c.Reason + ": " + c.Message
}

// setBatching changes the GitTarget's author-session limits.
func (t target) setBatching(ctx context.Context, b v1alpha1.BatchingSpec) {
	GinkgoHelper()
	Eventually(func() error { // the controller writes the status meanwhile
		gt := &v1alpha1.GitTarget{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "history"}, gt); err != nil {
			return err
		}
		gt.Spec.Batching = b
		return k8s.Update(ctx, gt)
	}).Should(Succeed())
}

// journaled decodes the manager's journal of the target (its on-disk
// format: 4-byte length, 4-byte CRC-32C, JSON record) into path → content
// and the authors of its records. A torn tail ends it.
func journaled(workDir, ns string) (map[string]string, map[string]bool) {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(workDir, ns, "history", "journal"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	Expect(err).NotTo(HaveOccurred())
	files, authors := map[string]string{}, map[string]bool{}
	for len(data) >= 8 {
		n := int(binary.BigEndian.Uint32(data[:4]))
		if len(data) < 8+n {
			break
		}
		var rec struct {
			Path    string                    `json:"p"`
			Content []byte                    `json:"c"`
			Delete  bool                      `json:"d"`
			User    struct{ Username string } `json:"u"`
			Moved   bool                      `json:"mv"`
		}
		if json.Unmarshal(data[8:8+n], &rec) != nil {
			break
		}
		if !rec.Moved {
			files[rec.Path] = string(rec.Content)
			authors[rec.User.Username] = true
		}
		data = data[8+n:]
	}
	return files, authors
}

// unpushed lists the commits of the target's local clone that its remote
// had not received, with their authors.
func unpushed(workDir, ns string) map[string]string {
	GinkgoHelper()
	clones, _ := filepath.Glob(filepath.Join(workDir, ns, "history", "clone-*"))
	out := map[string]string{}
	for _, dir := range clones {
		cmd := exec.Command("git", "--git-dir", dir, "log", "--format=%H %an", "refs/remotes/origin/main..refs/heads/main")
		b, err := cmd.CombinedOutput()
		if err != nil {
			// No tracking ref yet: every commit is unpushed.
			b, err = exec.Command("git", "--git-dir", dir, "log", "--format=%H %an", "refs/heads/main").CombinedOutput()
			if err != nil {
				continue
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if h, a, ok := strings.Cut(line, " "); ok {
				out[h] = a
			}
		}
	}
	return out
}

// finalContentEqualsCluster checks that each of the n ConfigMaps' files
// holds value, and that the newest commit that touched it is user's.
func (t target) finalContentEqualsCluster(n int, value, user string) {
	GinkgoHelper()
	Eventually(func() []string {
		var wrong []string
		for i := 0; i < n; i++ {
			if !strings.Contains(t.file(t.path("", "configmaps", fmt.Sprintf("cm-%d", i))), fmt.Sprintf("v: %s", value)) {
				wrong = append(wrong, fmt.Sprintf("cm-%d", i))
			}
		}
		return wrong
	}, 5*time.Minute, time.Second).Should(BeEmpty(), "files that do not hold the cluster's value")
	if user == "" {
		return
	}
	for i := 0; i < n; i += 17 { // a sample: authorsOf walks history per file
		Expect(t.authorsOf(t.path("", "configmaps", fmt.Sprintf("cm-%d", i)))[0]).To(Equal(user))
	}
}

var _ = Describe("The Git writer", func() {
	// Confirmed changes are journaled (fsync'd per batch) before they are
	// committed; a SIGKILL loses neither the change nor its author.
	//
	// Which changes had been confirmed before the kill: those in the
	// journal (confirmed, rendered, not yet committed: the author sessions
	// are kept open long on purpose) and those in the local clone's
	// unpushed commits; everything older was already pushed with its
	// author. After the restart every journaled change must be in the
	// remote's history at its journaled content in a commit by alice, and
	// every unpushed commit must be on the remote as it was. Changes that
	// were in flight at the kill (the webhook's claim lost with the
	// process) may honestly become the operator's; the rounds after the
	// restart then bring every file to the cluster's content.
	It("loses nothing of a 2,000-change burst when SIGKILLed in the middle, and keeps the authors", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		// Sessions stay open long, so the kill finds changes that only
		// the journal holds.
		t.setBatching(ctx, v1alpha1.BatchingSpec{IdleTimeout: metav1.Duration{Duration: 20 * time.Second},
			MaxChanges: 150, MaxAge: metav1.Duration{Duration: 40 * time.Second}})
		t.waitActive(ctx, m)

		const objects, rounds, appliers = 200, 10, 4
		var stop sync.WaitGroup
		var killed sync.Mutex // held while the manager is being killed
		round := func(r int) {
			var wg sync.WaitGroup
			for a := 0; a < appliers; a++ {
				wg.Add(1)
				go func(a int) {
					defer GinkgoRecover()
					defer wg.Done()
					applyAs("alice", t.ns, a*objects/appliers, objects/appliers, fmt.Sprintf("r%d", r))
				}(a)
			}
			wg.Wait()
		}
		// The first rounds, concurrent appliers; the kill lands while the
		// burst is running.
		stop.Add(1)
		go func() {
			defer GinkgoRecover()
			defer stop.Done()
			for r := 1; r <= 5; r++ {
				killed.Lock()
				killed.Unlock()
				round(r)
			}
		}()
		Eventually(func() float64 { return metric(m, "gitops_reverser_journaled_changes_total") }, 5*time.Minute).
			Should(BeNumerically(">=", 500))
		killed.Lock()
		m.kill()
		journal, journalAuthors := journaled(m.workDir, t.ns)
		local := unpushed(m.workDir, t.ns)
		killed.Unlock()
		stop.Wait()
		By(fmt.Sprintf("the kill left %d journaled file change(s) and %d unpushed commit(s)", len(journal), len(local)))
		Expect(len(journal)+len(local)).To(BeNumerically(">", 0), "the kill found nothing in flight; the spec proves nothing")
		Expect(journalAuthors).To(Equal(map[string]bool{"alice": true}))

		// Short sessions again, so alice's last round is committed well
		// before any snapshot recheck of the restart could look at it.
		t.setBatching(ctx, v1alpha1.BatchingSpec{IdleTimeout: metav1.Duration{Duration: time.Second},
			MaxChanges: 150, MaxAge: metav1.Duration{Duration: 10 * time.Second}})
		m.start()
		for r := 6; r <= rounds; r++ {
			round(r)
		}
		// The rounds after the restart are checked for content only: their
		// authors depend on the webhook answering the API server again
		// after a restart (its CA bundle), which is not this spec's
		// subject. The changes confirmed before the kill are checked by
		// author below.
		t.finalContentEqualsCluster(objects, fmt.Sprintf("r%d", rounds), "")

		history := map[string]string{}
		for _, c := range gitSrv.Log(t.repo, "main") {
			history[c.Hash] = c.AuthorName
		}
		for h, author := range local {
			Expect(history).To(HaveKeyWithValue(h, author), "an unpushed commit of the killed run is not on the remote")
		}
		// Every journaled content appears in a commit by alice.
		aliceVersions := map[string]map[string]bool{}
		for _, c := range gitSrv.Log(t.repo, "main") {
			if c.AuthorName != "alice" {
				continue
			}
			changed, err := gitSrv.ChangedFiles(t.repo, c.Hash)
			Expect(err).NotTo(HaveOccurred())
			for _, p := range changed {
				if _, ok := journal[p]; !ok {
					continue
				}
				b, err := gitSrv.ReadFileAt(t.repo, c.Hash, p)
				if err != nil {
					continue
				}
				if aliceVersions[p] == nil {
					aliceVersions[p] = map[string]bool{}
				}
				aliceVersions[p][string(b)] = true
			}
		}
		for p, content := range journal {
			Expect(aliceVersions[p]).To(HaveKey(content), "the journaled version of %s is not in a commit by alice", p)
		}
		Eventually(func() string { return t.synced(ctx) }).Should(HavePrefix("True/Synced"))
	})

	It("keeps changes in order while the remote is down for 60 s, shows the backlog, and delivers everything after", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		t.waitActive(ctx, m)
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "doomed", "--from-literal=v=1")
		Eventually(func() string { return t.file(t.path("", "configmaps", "doomed")) }).Should(ContainSubstring("v: \"1\""))

		gitSrv.SetDown(t.repo, true)
		DeferCleanup(func() { gitSrv.SetDown(t.repo, false) })
		down := time.Now()
		mustKubectl("alice", "-n", t.ns, "patch", "configmap", "doomed", "-p", `{"data":{"v":"2"}}`)
		mustKubectl("alice", "-n", t.ns, "delete", "configmap", "doomed")
		mustKubectl("bob", "-n", t.ns, "create", "configmap", "phoenix", "--from-literal=v=1")
		mustKubectl("bob", "-n", t.ns, "delete", "configmap", "phoenix")
		mustKubectl("alice", "-n", t.ns, "create", "configmap", "phoenix", "--from-literal=v=3")
		mustKubectl("bob", "-n", t.ns, "create", "configmap", "counter", "--from-literal=v=2")
		for i := 3; i <= 6; i++ {
			mustKubectl("bob", "-n", t.ns, "patch", "configmap", "counter", "-p", fmt.Sprintf(`{"data":{"v":"%d"}}`, i))
		}
		Eventually(func() string { return t.synced(ctx) }).Should(MatchRegexp(`^False/PushFailed: \d+ change\(s\) not committed, [1-9]\d* commit\(s\) not pushed`))
		// The outage lasts 60 s; nothing reaches the remote meanwhile (it
		// refuses everything), and the rule keeps recording.
		time.Sleep(time.Until(down.Add(60 * time.Second)))
		mustKubectl("alice", "-n", t.ns, "patch", "configmap", "phoenix", "-p", `{"data":{"v":"4"}}`)
		gitSrv.SetDown(t.repo, false)

		Eventually(func() string { return t.file(t.path("", "configmaps", "phoenix")) }).Should(ContainSubstring(`v: "4"`))
		Eventually(func() string { return t.file(t.path("", "configmaps", "counter")) }).Should(ContainSubstring(`v: "6"`))
		Expect(t.file(t.path("", "configmaps", "doomed"))).To(BeEmpty(), "the delete was overtaken by the update")
		Expect(t.authorsOf(t.path("", "configmaps", "doomed"))).To(HaveEach("alice"))
		Expect(t.authorsOf(t.path("", "configmaps", "phoenix"))[0]).To(Equal("alice"))
		Eventually(func() string { return t.synced(ctx) }).Should(HavePrefix("True/Synced"))
	})

	It("delivers one target's changes while another target's remote accepts connections and never answers", func(ctx context.Context) {
		hang, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := hang.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c) // held open, never answered
				mu.Unlock()
			}
		}()
		DeferCleanup(func() {
			_ = hang.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				_ = c.Close()
			}
		})
		m := newManager("--git-timeout=10s")
		m.start()
		good, hung := newTarget(ctx), newTarget(ctx)
		Eventually(func() error {
			gt := &v1alpha1.GitTarget{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: hung.ns, Name: "history"}, gt); err != nil {
				return err
			}
			gt.Spec.URL = "http://" + hang.Addr().String() + "/never.git"
			return k8s.Update(ctx, gt)
		}).Should(Succeed())
		good.waitActive(ctx, m)
		// The hung target's check times out: RemoteUnreachable keeps its
		// rule recording.
		hung.waitActive(ctx, m)

		for i := 0; i < 10; i++ {
			mustKubectl("alice", "-n", hung.ns, "create", "configmap", fmt.Sprintf("h-%d", i), "--from-literal=v=1")
			mustKubectl("alice", "-n", good.ns, "create", "configmap", fmt.Sprintf("g-%d", i), "--from-literal=v=1")
		}
		// Alice's ten ConfigMaps (the namespace's Git credentials Secret is
		// recorded too, by the first reconcile).
		var want []string
		for i := 0; i < 10; i++ {
			want = append(want, good.path("", "configmaps", fmt.Sprintf("g-%d", i)))
		}
		Eventually(func() []string { return good.files() }).Should(ContainElements(want))
		Expect(good.authorsOf(good.path("", "configmaps", "g-9"))).To(Equal([]string{"alice"}))
		Eventually(func() string { return hung.synced(ctx) }).Should(HavePrefix("False/PushFailed"))
		mu.Lock()
		Expect(conns).NotTo(BeEmpty(), "the hung remote was never called; the spec proves nothing")
		mu.Unlock()
	})

	It("keeps every commit of a person who pushes every second during a 500-change burst", func(ctx context.Context) {
		m := newManager()
		m.start()
		t := newTarget(ctx)
		t.waitActive(ctx, m)

		done := make(chan struct{})
		var humans []string
		var pushing sync.WaitGroup
		pushing.Add(1)
		go func() {
			defer GinkgoRecover()
			defer pushing.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
				id, err := gitSrv.PushAsHuman(t.repo, gitserver.HumanChange{Branch: "main",
					Files: map[string]string{fmt.Sprintf("notes/%d.md", i): "note\n"}, AuthorName: "Hu Man"})
				Expect(err).NotTo(HaveOccurred())
				humans = append(humans, id)
			}
		}()
		for r := 1; r <= 10; r++ {
			applyAs("alice", t.ns, 0, 50, fmt.Sprintf("r%d", r))
		}
		t.finalContentEqualsCluster(50, "r10", "alice")
		close(done)
		pushing.Wait()
		Expect(len(humans)).To(BeNumerically(">", 3))
		Eventually(func() string { return t.synced(ctx) }).Should(HavePrefix("True/Synced"))
		history := map[string]bool{}
		for _, c := range gitSrv.Log(t.repo, "main") {
			history[c.Hash] = true
		}
		for _, id := range humans {
			Expect(history).To(HaveKey(id), "a person's commit is gone from history (a force-push?)")
		}
		t.finalContentEqualsCluster(50, "r10", "alice")
	})

	It("names the path when a person's file stands where a directory is needed, and continues once it is gone", func(ctx context.Context) {
		t := newTarget(ctx)
		blocker := "cluster/" + t.ns + "/core"
		_, err := gitSrv.PushAsHuman(t.repo, gitserver.HumanChange{Branch: "main", Files: map[string]string{blocker: "in the way\n"}})
		Expect(err).NotTo(HaveOccurred())
		m := newManager()
		m.start()
		t.waitActive(ctx, m)

		mustKubectl("alice", "-n", t.ns, "create", "configmap", "settings", "--from-literal=color=blue")
		Eventually(func() string { return t.synced(ctx) }).Should(And(
			MatchRegexp(`^False/(CommitFailed|PushFailed): `), ContainSubstring(`"`+blocker+`"`)))
		mustKubectl("alice", "-n", t.ns, "patch", "configmap", "settings", "-p", `{"data":{"color":"green"}}`)

		_, err = gitSrv.PushAsHuman(t.repo, gitserver.HumanChange{Branch: "main", Delete: []string{blocker}})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return t.file(t.path("", "configmaps", "settings")) }, 4*time.Minute).Should(ContainSubstring("color: green"))
		Expect(t.authorsOf(t.path("", "configmaps", "settings"))).To(HaveEach("alice"))
		Eventually(func() string { return t.synced(ctx) }).Should(HavePrefix("True/Synced"))
	})
})
