package batch

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// urlTargets serves GitTargets by name, each with its own URL.
type urlTargets struct {
	mu   sync.Mutex
	urls map[string]string
	idle time.Duration
	// tune changes the spec (benchmarks).
	tune func(*v1alpha1.GitTargetSpec)
}

func (s *urlTargets) Target(_ context.Context, key types.NamespacedName) (*v1alpha1.GitTarget, gitstore.Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idle := s.idle
	if idle == 0 {
		idle = 10 * time.Millisecond
	}
	gt := &v1alpha1.GitTarget{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: v1alpha1.GitTargetSpec{
			URL: s.urls[key.Name], Branch: "main", BasePath: "cluster",
			Commit:   v1alpha1.CommitSpec{CommitterName: "gitops-reverser", CommitterEmail: "bot@test", AuthorEmailDomain: "users.test"},
			Sync:     v1alpha1.SyncSpec{PushInterval: metav1.Duration{Duration: 10 * time.Millisecond}, PushAfterCommits: 1},
			Batching: v1alpha1.BatchingSpec{IdleTimeout: metav1.Duration{Duration: idle}, MaxChanges: 10},
		},
	}
	if s.tune != nil {
		s.tune(&gt.Spec)
	}
	return gt, gitstore.Credentials{}, nil
}

func execGit(args ...string) ([]byte, error) {
	return exec.Command("git", args...).CombinedOutput()
}

func bareRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "remote.git")
	gitCLI(t, "init", "-q", "--bare", "-b", "main", dir)
	return dir
}

func startBatcher(t *testing.T, opts Options) *Batcher {
	t.Helper()
	if opts.Tick == 0 {
		opts.Tick = 10 * time.Millisecond
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 20 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 200 * time.Millisecond
	}
	b := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return b
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("never: %s", what)
		}
	}
}

var configmaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func cmChange(target, name, user string, op v1alpha1.Operation, value string) change.Change {
	rule := &rules.Rule{Key: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "r-" + target},
		Target: types.NamespacedName{Namespace: "shop", Name: target}}
	return change.Change{
		Operation: op, Resource: configmaps, Namespace: "shop", Name: name,
		Object: &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": "shop"},
			"data":     map[string]any{"v": value},
		}},
		User: change.User{Username: user}, Rules: []*rules.Rule{rule},
	}
}

func remoteFile(remote, p string) (string, bool) {
	out, err := exec.Command("git", "--git-dir", remote, "show", "main:"+p).CombinedOutput()
	return string(out), err == nil
}

func remoteLog(remote, format string) string {
	out, _ := exec.Command("git", "--git-dir", remote, "log", "--format="+format, "main").CombinedOutput()
	return string(out)
}

const cmPath = "cluster/shop/core/configmaps/"

// TestWorker_order_lastWriteWinsPerObject: many changes of a few objects by
// alternating authors, ending with a delete for one of them, reach the
// remote in the order they were recorded: the files end at the last value,
// and the deleted object stays deleted.
func TestWorker_order_lastWriteWinsPerObject(t *testing.T) {
	remote := bareRepo(t)
	b := startBatcher(t, Options{Targets: &urlTargets{urls: map[string]string{"history": remote}}, WorkDir: t.TempDir(), QueueSize: 16})
	ctx := context.Background()
	users := []string{"alice", "bob", "carol"}
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("cm-%d", i%3)
		b.Record(ctx, cmChange("history", name, users[i%len(users)], v1alpha1.OperationUpdate, fmt.Sprintf("v%d", i)))
	}
	b.Record(ctx, cmChange("history", "cm-0", "alice", v1alpha1.OperationDelete, ""))
	b.Record(ctx, cmChange("history", "cm-2", "bob", v1alpha1.OperationUpdate, "final"))
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	eventually(t, "the remote holds every change", func() bool {
		st, _ := b.Status(key)
		c2, _ := remoteFile(remote, cmPath+"cm-2.yaml")
		return st.Backlog() == 0 && st.Unpushed == 0 && strings.Contains(c2, "v: final")
	})
	if c, ok := remoteFile(remote, cmPath+"cm-0.yaml"); ok {
		t.Fatalf("cm-0 was deleted last, yet the remote holds it:\n%s", c)
	}
	if c, _ := remoteFile(remote, cmPath+"cm-1.yaml"); !strings.Contains(c, "v: v298") {
		t.Fatalf("cm-1 = %q, want its last value v298", c)
	}
}

// TestJournal_open_cutsATornTail: records a crash tore (cut short, or with a
// bad checksum) end the journal; the records before them are replayed and
// the torn bytes are cut off, so appends continue cleanly.
func TestJournal_open_cutsATornTail(t *testing.T) {
	tests := []struct {
		name string
		tear func(b []byte) []byte
	}{
		{"torn header", func(b []byte) []byte { return append(b, 0, 0, 1) }},
		{"torn payload", func(b []byte) []byte { return append(b, 0, 0, 0, 40, 1, 2, 3, 4, '{', '"') }},
		{"bad checksum", func(b []byte) []byte {
			var buf bytes.Buffer
			_, _ = encodeFrame(&buf, journalRecord{Session: 9, Path: "x", When: 1})
			frame := buf.Bytes()
			frame[len(frame)-2] ^= 0xff
			return append(b, frame...)
		}},
		{"absurd length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "journal")
			j, recs, err := openJournal(p)
			if err != nil || len(recs) != 0 {
				t.Fatalf("new journal: %v, %d records", err, len(recs))
			}
			alice := change.User{Username: "alice", Groups: []string{"dev"}}
			for i, f := range []string{"a.yaml", "b.yaml"} {
				if err := j.append(journalRecord{Session: 1, User: alice, Path: f, Content: []byte("v: " + f),
					Changes: []string{"UPDATE configmaps shop/" + f}, When: int64(i + 1)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.close(); err != nil {
				t.Fatal(err)
			}
			good, _ := os.ReadFile(p)
			if err := os.WriteFile(p, tt.tear(append([]byte(nil), good...)), 0o600); err != nil {
				t.Fatal(err)
			}

			j, recs, err = openJournal(p)
			if err != nil {
				t.Fatal(err)
			}
			defer j.close()
			if len(recs) != 2 || recs[1].Path != "b.yaml" || string(recs[1].Content) != "v: b.yaml" || recs[0].User.Username != "alice" {
				t.Fatalf("replayed %+v, want the two whole records", recs)
			}
			if fi, _ := os.Stat(p); fi.Size() != int64(len(good)) {
				t.Fatalf("journal is %d bytes after open, want the torn tail cut to %d", fi.Size(), len(good))
			}
			s := replaySessions(recs)
			if len(s) != 1 || s[0].author.Username != "alice" || len(s[0].files) != 2 || len(s[0].changes) != 2 {
				t.Fatalf("sessions = %+v, want alice's one session with both files", s)
			}
		})
	}
}

// TestBatcher_Start_commitsWhatTheJournalHolds: changes journaled by a run
// that was killed before committing them are committed at the next start,
// with their author (a torn last record is ignored).
func TestBatcher_Start_commitsWhatTheJournalHolds(t *testing.T) {
	remote := bareRepo(t)
	work := t.TempDir()
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	j, _, err := openJournal(journalPath(work, key))
	if err != nil {
		t.Fatal(err)
	}
	alice := change.User{Username: "alice"}
	_ = j.append(journalRecord{Session: 3, User: alice, Path: cmPath + "a.yaml", Content: []byte("v: a\n"),
		Changes: []string{"UPDATE configmaps shop/a"}, When: time.Now().UnixNano()})
	_ = j.append(journalRecord{Session: 4, User: change.User{Username: "bob"}, Path: cmPath + "b.yaml", Content: []byte("v: b\n"),
		Changes: []string{"UPDATE configmaps shop/b"}, When: time.Now().UnixNano()})
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(journalPath(work, key), os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.Write([]byte{0, 0, 0, 99, 1})
	_ = f.Close()

	startBatcher(t, Options{Targets: &urlTargets{urls: map[string]string{"history": remote}}, WorkDir: work})
	eventually(t, "the journaled changes reach the remote", func() bool {
		_, a := remoteFile(remote, cmPath+"a.yaml")
		_, b := remoteFile(remote, cmPath+"b.yaml")
		return a && b
	})
	if got := remoteLog(remote, "%an"); got != "bob\nalice\n" {
		t.Fatalf("authors = %q, want alice then bob, each on their own commit", got)
	}
	eventually(t, "the journal is emptied once committed", func() bool {
		fi, err := os.Stat(journalPath(work, key))
		return err == nil && fi.Size() == 0
	})
}

// hangingServer accepts Git HTTP requests and never answers until the test
// ends; it counts the requests it holds.
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int32, func()) {
	var held atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		defer held.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		free()
		srv.Close()
	})
	return srv, &held, free
}

// TestWorker_isolation_aHungRemoteDelaysOnlyItsTarget: while one target's
// remote holds its push forever, the other target's changes reach their
// remote, and Record returns for both.
func TestWorker_isolation_aHungRemoteDelaysOnlyItsTarget(t *testing.T) {
	good := bareRepo(t)
	srv, held, free := hangingServer(t)
	b := startBatcher(t, Options{Targets: &urlTargets{urls: map[string]string{"good": good, "hung": srv.URL + "/repo.git"}},
		WorkDir: t.TempDir(), NetworkTimeout: time.Hour, QueueSize: 4})
	t.Cleanup(free) // before the batcher stops: its last push would wait an hour
	ctx := context.Background()
	b.Record(ctx, cmChange("hung", "first", "alice", v1alpha1.OperationCreate, "1"))
	eventually(t, "the hung remote holds a request", func() bool { return held.Load() > 0 })
	for i := 0; i < 20; i++ { // more than the queue holds: Record must not wait on the hung remote
		b.Record(ctx, cmChange("hung", fmt.Sprintf("cm-%d", i), "alice", v1alpha1.OperationCreate, "1"))
		b.Record(ctx, cmChange("good", fmt.Sprintf("cm-%d", i), "bob", v1alpha1.OperationCreate, "1"))
	}
	eventually(t, "the good target's changes reach its remote", func() bool {
		_, ok := remoteFile(good, cmPath+"cm-19.yaml")
		return ok
	})
	if held.Load() == 0 {
		t.Fatal("the hung remote let go before the good target finished; the test proves nothing")
	}
	st, _ := b.Status(types.NamespacedName{Namespace: "shop", Name: "hung"})
	if st.Unpushed == 0 && st.Backlog() == 0 {
		t.Fatalf("the hung target shows no backlog: %+v", st)
	}
}

// TestWorker_commit_keepsASessionThatConflicts: a human commits a file where
// the operator needs a directory; the session is kept, the target names the
// path, and removing the file lets the change through.
func TestWorker_commit_keepsASessionThatConflicts(t *testing.T) {
	remote := bareRepo(t)
	human := filepath.Join(t.TempDir(), "human")
	gitCLI(t, "clone", "-q", remote, human)
	humanGit := func(args ...string) {
		gitCLI(t, append([]string{"-C", human, "-c", "user.name=Hu Man", "-c", "user.email=hu@man"}, args...)...)
	}
	if err := os.MkdirAll(filepath.Join(human, "cluster", "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(human, "cluster", "shop", "core"), []byte("not a dir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	humanGit("add", ".")
	humanGit("commit", "-q", "-m", "a file in the way")
	humanGit("push", "-q", "origin", "HEAD:main")

	b := startBatcher(t, Options{Targets: &urlTargets{urls: map[string]string{"history": remote}}, WorkDir: t.TempDir()})
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	// The first change lets the worker fetch the human's commit; the
	// conflict shows on the commit or, when the fetch came later, on the
	// push's replay. Either way the status names the path.
	b.Record(context.Background(), cmChange("history", "settings", "alice", v1alpha1.OperationCreate, "blue"))
	eventually(t, "the target names the conflicting path", func() bool {
		st, _ := b.Status(key)
		return (st.Reason == v1alpha1.ReasonCommitFailed || st.Reason == v1alpha1.ReasonPushFailed) &&
			strings.Contains(st.Message, `"cluster/shop/core"`)
	})

	humanGit("rm", "-q", "cluster/shop/core")
	humanGit("commit", "-q", "-m", "make way")
	humanGit("push", "-q", "origin", "HEAD:main")
	eventually(t, "alice's change reaches the remote once the file is gone", func() bool {
		c, _ := remoteFile(remote, cmPath+"settings.yaml")
		return strings.Contains(c, "v: blue")
	})
	if got := remoteLog(remote, "%an"); !strings.Contains(got, "alice") || !strings.Contains(got, "Hu Man") {
		t.Fatalf("authors = %q, want alice's commit on top of the human's", got)
	}
	eventually(t, "the status clears", func() bool {
		st, _ := b.Status(key)
		return st.Reason == ""
	})
}

func TestBackoff_doublesUpToMax(t *testing.T) {
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {100, time.Minute},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt, time.Second, time.Minute); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

// TestBatcher_Forget_newURLStartsFromAFreshClone: pointing a target at a new
// empty repository does not push the old repository's history; what the
// old remote never received moves over.
func TestBatcher_Forget_newURLStartsFromAFreshClone(t *testing.T) {
	old, fresh := bareRepo(t), bareRepo(t)
	targets := &urlTargets{urls: map[string]string{"history": old}}
	b := startBatcher(t, Options{Targets: targets, WorkDir: t.TempDir()})
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	b.Record(context.Background(), cmChange("history", "before", "alice", v1alpha1.OperationCreate, "1"))
	eventually(t, "the first change reaches the old remote", func() bool {
		_, ok := remoteFile(old, cmPath+"before.yaml")
		return ok
	})
	targets.mu.Lock()
	targets.urls["history"] = fresh
	targets.mu.Unlock()
	b.Forget(key)
	b.Record(context.Background(), cmChange("history", "after", "bob", v1alpha1.OperationCreate, "1"))
	eventually(t, "the next change reaches the new remote", func() bool {
		_, ok := remoteFile(fresh, cmPath+"after.yaml")
		return ok
	})
	if _, ok := remoteFile(fresh, cmPath+"before.yaml"); ok {
		t.Fatal("the new repository got the old repository's history")
	}
	if got := remoteLog(fresh, "%an"); got != "bob\n" {
		t.Fatalf("new remote authors = %q, want only bob", got)
	}
}

// TestBatcher_Start_pushesWhatAPreviousRunLeftUnpushed: commits a killed
// run made but never pushed reach the remote at the next start, without
// waiting for a new change.
func TestBatcher_Start_pushesWhatAPreviousRunLeftUnpushed(t *testing.T) {
	remote, work := bareRepo(t), t.TempDir()
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	w, err := gitstore.OpenLocal(gitstore.Config{URL: remote, Branch: "main", Dir: cloneDir(work, key, remote, "main"),
		Committer: gitstore.Signature{Name: "gitops-reverser", Email: "bot@test"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(context.Background(), gitstore.CommitRequest{Author: gitstore.Signature{Name: "alice", Email: "alice@users.test"},
		Message: "left behind", Changes: []gitstore.FileChange{{Path: cmPath + "left.yaml", Content: []byte("v: 1\n")}}}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	startBatcher(t, Options{Targets: &urlTargets{urls: map[string]string{"history": remote}}, WorkDir: work})
	eventually(t, "the unpushed commit reaches the remote", func() bool {
		return remoteLog(remote, "%an %s") == "alice left behind\n"
	})
}

// TestWorker_push_closedSessionIsPushedAtOnce: with nothing else waiting,
// a committed session goes to the remote at once; the push interval (an
// hour here) is the longest wait, not the usual one.
func TestWorker_push_closedSessionIsPushedAtOnce(t *testing.T) {
	remote := bareRepo(t)
	targets := &urlTargets{urls: map[string]string{"history": remote}, tune: func(s *v1alpha1.GitTargetSpec) {
		s.Sync = v1alpha1.SyncSpec{PushInterval: metav1.Duration{Duration: time.Hour}, PushAfterCommits: 20}
	}}
	b := startBatcher(t, Options{Targets: targets, WorkDir: t.TempDir()})
	ctx := context.Background()
	b.Record(ctx, cmChange("history", "cm-0", "alice", v1alpha1.OperationUpdate, "first"))
	eventually(t, "the remote holds the first session", func() bool {
		c, _ := remoteFile(remote, cmPath+"cm-0.yaml")
		return strings.Contains(c, "v: first")
	})
	b.Record(ctx, cmChange("history", "cm-0", "bob", v1alpha1.OperationUpdate, "second"))
	eventually(t, "the remote holds the second session", func() bool {
		c, _ := remoteFile(remote, cmPath+"cm-0.yaml")
		return strings.Contains(c, "v: second")
	})
	if got := strings.Fields(remoteLog(remote, "%an")); len(got) != 2 || got[0] != "bob" || got[1] != "alice" {
		t.Fatalf("remote authors (newest first) = %v, want [bob alice]", got)
	}
}

// TestWorker_tickEvery_quietTargetTicksLess: a target with nothing open,
// waiting or failing is checked idleTicks times less often (bounded by
// half its pull interval); anything in flight keeps the short tick.
func TestWorker_tickEvery_quietTargetTicksLess(t *testing.T) {
	const tick = 100 * time.Millisecond
	quiet := func() *target {
		return &target{sessions: newSessions(Limits{}), journal: &journal{}, synced: true}
	}
	tests := []struct {
		name  string
		setup func(w *worker, t *target)
		want  time.Duration
	}{
		{name: "quiet", setup: func(*worker, *target) {}, want: idleTicks * tick},
		{name: "quiet, short pull interval", setup: func(_ *worker, t *target) { t.spec.Sync.PullInterval.Duration = 600 * time.Millisecond }, want: 300 * time.Millisecond},
		{name: "target not open", setup: func(w *worker, _ *target) { w.t = nil }, want: tick},
		{name: "changes held", setup: func(w *worker, _ *target) { w.held = []item{{}} }, want: tick},
		{name: "open session", setup: func(_ *worker, t *target) {
			t.sessions.add(change.User{Username: "alice"}, fileChange{path: "a.yaml"}, time.Unix(0, 0))
		}, want: tick},
		{name: "session to commit", setup: func(_ *worker, t *target) { t.pending = []*session{{}} }, want: tick},
		{name: "commits to push", setup: func(_ *worker, t *target) { t.unpushed = 1 }, want: tick},
		{name: "network busy", setup: func(_ *worker, t *target) { t.netBusy = true }, want: tick},
		{name: "network failing", setup: func(_ *worker, t *target) { t.netFails = 1 }, want: tick},
		{name: "never synced", setup: func(_ *worker, t *target) { t.synced = false }, want: tick},
		{name: "journal not fsync'd", setup: func(_ *worker, t *target) { t.journal.unsynced = true }, want: tick},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &worker{b: &Batcher{opts: Options{Tick: tick}}, t: quiet()}
			tt.setup(w, w.t)
			if got := w.tickEvery(); got != tt.want {
				t.Errorf("tickEvery = %s, want %s", got, tt.want)
			}
		})
	}
}
