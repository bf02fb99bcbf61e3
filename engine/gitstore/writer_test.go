package gitstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriter_Commit_nestedPaths(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")

	files := map[string]string{
		"clusters/prod/apps/deployment-web.yaml": "kind: Deployment\n",
		"clusters/prod/apps/service-web.yaml":    "kind: Service\n",
		"clusters/prod/ns.yaml":                  "kind: Namespace\n",
		"README.md":                              "hello\n",
		// Names around the "/" sort position check Git's tree order.
		"a-b":     "1\n",
		"a.b":     "2\n",
		"a/x":     "3\n",
		"a0":      "4\n",
		"a/b/c/d": "5\n",
	}
	commitFiles(t, w, "alice", "add files", files)
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}

	got := runGit(t, remote, "ls-tree", "-r", "--name-only", "main")
	var want []string
	for p := range files {
		want = append(want, p)
	}
	for _, p := range want {
		if !strings.Contains("\n"+got+"\n", "\n"+p+"\n") {
			t.Errorf("remote tree lacks %q; has:\n%s", p, got)
		}
	}
	if n := len(strings.Split(got, "\n")); n != len(files) {
		t.Errorf("remote has %d files, want %d:\n%s", n, len(files), got)
	}
	for p, content := range files {
		if show := runGit(t, remote, "show", "main:"+p); show+"\n" != content {
			t.Errorf("git show main:%s = %q, want %q", p, show, content)
		}
		b, ok, err := w.ReadFile(p)
		if err != nil || !ok || string(b) != content {
			t.Errorf("ReadFile(%q) = %q, %v, %v; want %q", p, b, ok, err, content)
		}
	}
	fsck(t, remote)
}

func TestWriter_Commit_deleteRemovesEmptyDirs(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	commitFiles(t, w, "alice", "add", map[string]string{
		"ns/a/deep/one.yaml": "1\n",
		"ns/a/two.yaml":      "2\n",
		"other/keep.yaml":    "k\n",
	})

	tests := []struct {
		name   string
		delete string
		want   string // ls-tree -r -t output names after the delete
	}{
		{
			name:   "last file of a nested dir removes the dir",
			delete: "ns/a/deep/one.yaml",
			want:   "ns ns/a ns/a/two.yaml other other/keep.yaml",
		},
		{
			name:   "last file of a chain removes every emptied parent",
			delete: "ns/a/two.yaml",
			want:   "other other/keep.yaml",
		},
		{
			name:   "last file of the repository leaves an empty tree",
			delete: "other/keep.yaml",
			want:   "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commitFiles(t, w, "bob", "delete "+tt.delete, map[string]string{tt.delete: ""})
			if _, err := w.Push(context.Background()); err != nil {
				t.Fatalf("Push: %v", err)
			}
			got := strings.Join(strings.Fields(runGit(t, remote, "ls-tree", "-r", "-t", "--name-only", "main")), " ")
			if got != tt.want {
				t.Errorf("tree after delete = %q, want %q", got, tt.want)
			}
			if _, ok, err := w.ReadFile(tt.delete); ok || err != nil {
				t.Errorf("ReadFile(%q) after delete = found %v, err %v", tt.delete, ok, err)
			}
			fsck(t, remote)
		})
	}
}

func TestWriter_Commit_noOpSkipped(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	first := commitFiles(t, w, "alice", "add", map[string]string{"a/b.yaml": "x\n"})

	tests := []struct {
		name    string
		changes []FileChange
	}{
		{name: "same content", changes: []FileChange{{Path: "a/b.yaml", Content: []byte("x\n")}}},
		{name: "delete of a missing file", changes: []FileChange{{Path: "a/missing.yaml", Delete: true}}},
		{name: "delete in a missing dir", changes: []FileChange{{Path: "nope/x/y.yaml", Delete: true}}},
		{name: "write then restore", changes: []FileChange{
			{Path: "a/b.yaml", Content: []byte("changed\n")},
			{Path: "a/b.yaml", Content: []byte("x\n")},
		}},
		{name: "no changes", changes: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := w.Commit(context.Background(), CommitRequest{
				Author: Signature{Name: "alice"}, Message: "noop", Changes: tt.changes,
			})
			if !errors.Is(err, ErrNoChange) || !h.IsZero() {
				t.Fatalf("Commit = %s, %v; want zero hash and ErrNoChange", h, err)
			}
			head, err := w.Head()
			if err != nil || head.String() != first {
				t.Fatalf("Head = %s, %v; want unchanged %s", head, err, first)
			}
		})
	}
}

func TestWriter_Commit_authorAndCommitter(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	_, err := w.Commit(context.Background(), CommitRequest{
		Author:  Signature{Name: "system:serviceaccount:ci:deployer", Email: "deployer@ci.example.com"},
		Message: "Update Deployment web\n\nK8s-User: system:serviceaccount:ci:deployer",
		When:    when,
		Changes: []FileChange{{Path: "web.yaml", Content: []byte("a: 1\n")}},
	})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	got := runGit(t, remote, "log", "-1", "--format=%an|%ae|%at|%cn|%ce|%s|%(trailers:key=K8s-User,valueonly)", "main")
	want := fmt.Sprintf("system:serviceaccount:ci:deployer|deployer@ci.example.com|%d|gitops-reverser|operator@example.com|Update Deployment web|system:serviceaccount:ci:deployer", when.Unix())
	if got != want {
		t.Errorf("git log = %q\nwant      %q", got, want)
	}
	fsck(t, remote)
}

func TestWriter_Commit_rejectsBadInput(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	commitFiles(t, w, "alice", "seed", map[string]string{"dir/file.yaml": "1\n", "file": "2\n"})
	head, _ := w.Head()

	tests := []struct {
		name    string
		req     CommitRequest
		wantErr error
	}{
		{name: "absolute path", req: req("/etc/passwd"), wantErr: ErrInvalidPath},
		{name: "dot-dot", req: req("a/../../x"), wantErr: ErrInvalidPath},
		{name: "dot-git", req: req("a/.git/config"), wantErr: ErrInvalidPath},
		{name: "dot-git upper case", req: req(".GIT/hooks/x"), wantErr: ErrInvalidPath},
		{name: "empty path", req: req(""), wantErr: ErrInvalidPath},
		{name: "root", req: req("./"), wantErr: ErrInvalidPath},
		{name: "nul byte", req: req("a\x00b"), wantErr: ErrInvalidPath},
		{name: "file over dir", req: req("dir"), wantErr: ErrPathConflict},
		{name: "dir over file", req: req("file/x.yaml"), wantErr: ErrPathConflict},
		{name: "delete a directory", req: CommitRequest{Author: Signature{Name: "a"}, Message: "m",
			Changes: []FileChange{{Path: "dir", Delete: true}}}, wantErr: ErrPathConflict},
		{name: "file and dir in one request", req: req("new", "new/x"), wantErr: ErrPathConflict},
		{name: "author with angle bracket", req: CommitRequest{Author: Signature{Name: "eve <x@y>"}, Message: "m",
			Changes: []FileChange{{Path: "x", Content: []byte("1")}}}},
		{name: "empty message", req: CommitRequest{Author: Signature{Name: "a"},
			Changes: []FileChange{{Path: "x", Content: []byte("1")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Commit(context.Background(), tt.req)
			if err == nil {
				t.Fatal("Commit succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Commit error = %v, want %v", err, tt.wantErr)
			}
			if now, _ := w.Head(); now != head {
				t.Fatalf("head moved to %s after a rejected commit", now)
			}
		})
	}
}

func req(paths ...string) CommitRequest {
	r := CommitRequest{Author: Signature{Name: "alice"}, Message: "m"}
	for _, p := range paths {
		r.Changes = append(r.Changes, FileChange{Path: p, Content: []byte("c\n")})
	}
	return r
}

func TestWriter_Push_emptyRemoteGetsRootCommit(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, filepath.Join(t.TempDir(), "clone"))
	commitFiles(t, w, "alice", "first", map[string]string{"a.yaml": "1\n"})
	commitFiles(t, w, "bob", "second", map[string]string{"b.yaml": "2\n"})
	if n, err := w.Unpushed(); err != nil || n != 2 {
		t.Fatalf("Unpushed = %d, %v; want 2", n, err)
	}
	res, err := w.Push(context.Background())
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Pushed != 2 || res.Replayed != 0 || res.Attempts != 1 {
		t.Errorf("Push result = %+v, want 2 pushed, 0 replayed, 1 attempt", res)
	}
	if n, err := w.Unpushed(); err != nil || n != 0 {
		t.Fatalf("Unpushed after push = %d, %v; want 0", n, err)
	}
	// The first commit has no parent.
	parents := runGit(t, remote, "rev-list", "--parents", "--reverse", "main")
	lines := strings.Split(parents, "\n")
	if len(lines) != 2 || len(strings.Fields(lines[0])) != 1 {
		t.Errorf("rev-list --parents = %q; want a root commit then one child", parents)
	}
	if head, _ := w.Head(); runGit(t, remote, "rev-parse", "main") != head.String() {
		t.Errorf("remote main != local head %s", head)
	}
	// Nothing left to push is not an error.
	if res, err := w.Push(context.Background()); err != nil || res.Pushed != 0 {
		t.Errorf("second Push = %+v, %v; want nothing pushed", res, err)
	}
	fsck(t, remote)
}

func TestWriter_Push_replaysOverHumanCommit(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, filepath.Join(t.TempDir(), "clone"))
	commitFiles(t, w, "alice", "seed", map[string]string{"apps/web.yaml": "v1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push seed: %v", err)
	}

	human := humanClone(t, remote)
	humanHead := humanCommitAndPush(t, human, "human: add docs", map[string]string{"docs/notes.md": "by hand\n"})

	commitFiles(t, w, "bob", "bob: update web", map[string]string{"apps/web.yaml": "v2\n"})
	commitFiles(t, w, "carol", "carol: add api", map[string]string{"apps/api.yaml": "api\n"})
	res, err := w.Push(context.Background())
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Pushed != 2 || res.Replayed != 2 || res.Attempts != 2 {
		t.Errorf("Push result = %+v, want 2 pushed, 2 replayed, 2 attempts", res)
	}

	if _, err := gitOutput(remote, "merge-base", "--is-ancestor", humanHead, "main"); err != nil {
		t.Errorf("human commit %s is not an ancestor of main: %v", humanHead, err)
	}
	log := runGit(t, remote, "log", "--format=%an|%cn|%s", "main")
	wantLog := "carol|gitops-reverser|carol: add api\n" +
		"bob|gitops-reverser|bob: update web\n" +
		"Human Dev|Human Dev|human: add docs\n" +
		"alice|gitops-reverser|seed"
	if log != wantLog {
		t.Errorf("git log =\n%s\nwant\n%s", log, wantLog)
	}
	for p, want := range map[string]string{"apps/web.yaml": "v2", "apps/api.yaml": "api", "docs/notes.md": "by hand"} {
		if got := runGit(t, remote, "show", "main:"+p); got != want {
			t.Errorf("main:%s = %q, want %q", p, got, want)
		}
	}
	if head, _ := w.Head(); runGit(t, remote, "rev-parse", "main") != head.String() {
		t.Errorf("remote main != local head %s", head)
	}
	fsck(t, remote)
}

func TestWriter_Push_conflictOurContentWins(t *testing.T) {
	tests := []struct {
		name       string
		human      map[string]string
		ours       map[string]string
		wantFiles  map[string]string // "" = absent
		wantCommit bool              // our commit survives the replay
	}{
		{
			name:       "human edits the same file",
			human:      map[string]string{"apps/web.yaml": "human\n"},
			ours:       map[string]string{"apps/web.yaml": "ours\n"},
			wantFiles:  map[string]string{"apps/web.yaml": "ours"},
			wantCommit: true,
		},
		{
			name:       "human deletes a file we then write",
			human:      map[string]string{"apps/web.yaml": ""},
			ours:       map[string]string{"apps/web.yaml": "ours\n"},
			wantFiles:  map[string]string{"apps/web.yaml": "ours"},
			wantCommit: true,
		},
		{
			name:       "human edits a file we delete",
			human:      map[string]string{"apps/web.yaml": "human\n"},
			ours:       map[string]string{"apps/web.yaml": ""},
			wantFiles:  map[string]string{"apps/web.yaml": ""},
			wantCommit: true,
		},
		{
			name:       "human already made our change",
			human:      map[string]string{"apps/web.yaml": "same\n"},
			ours:       map[string]string{"apps/web.yaml": "same\n"},
			wantFiles:  map[string]string{"apps/web.yaml": "same"},
			wantCommit: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := newBareRemote(t)
			w := openWriter(t, remote, "")
			commitFiles(t, w, "alice", "seed", map[string]string{"apps/web.yaml": "v1\n"})
			if _, err := w.Push(context.Background()); err != nil {
				t.Fatalf("Push seed: %v", err)
			}
			humanHead := humanCommitAndPush(t, humanClone(t, remote), "human change", tt.human)
			commitFiles(t, w, "bob", "our change", tt.ours)

			if _, err := w.Push(context.Background()); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if _, err := gitOutput(remote, "merge-base", "--is-ancestor", humanHead, "main"); err != nil {
				t.Errorf("human commit is not an ancestor of main: %v", err)
			}
			for p, want := range tt.wantFiles {
				got, err := gitOutput(remote, "show", "main:"+p)
				if want == "" {
					if err == nil {
						t.Errorf("main:%s exists (%q), want absent", p, got)
					}
					continue
				}
				if err != nil || got != want {
					t.Errorf("main:%s = %q (%v), want %q", p, got, err, want)
				}
			}
			subject := runGit(t, remote, "log", "-1", "--format=%s", "main")
			if gotCommit := subject == "our change"; gotCommit != tt.wantCommit {
				t.Errorf("top commit %q; want our commit on top: %v", subject, tt.wantCommit)
			}
			fsck(t, remote)
		})
	}
}

func TestWriter_Push_humanInitialisesEmptyRemote(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "") // remote is empty now
	humanHead := humanCommitAndPush(t, humanClone(t, remote), "human: initial", map[string]string{"README.md": "hi\n"})
	commitFiles(t, w, "alice", "ours", map[string]string{"apps/a.yaml": "a\n"})

	res, err := w.Push(context.Background())
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Replayed != 1 {
		t.Errorf("Replayed = %d, want 1", res.Replayed)
	}
	if _, err := gitOutput(remote, "merge-base", "--is-ancestor", humanHead, "main"); err != nil {
		t.Errorf("human root commit is not an ancestor of main: %v", err)
	}
	if got := runGit(t, remote, "ls-tree", "-r", "--name-only", "main"); got != "README.md\napps/a.yaml" {
		t.Errorf("files = %q", got)
	}
	fsck(t, remote)
}

func TestWriter_Pull_fastForwardsAndReplays(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, filepath.Join(t.TempDir(), "clone"))
	commitFiles(t, w, "alice", "seed", map[string]string{"a.yaml": "1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	human := humanClone(t, remote)

	// No local commits: fast-forward.
	h1 := humanCommitAndPush(t, human, "human 1", map[string]string{"h1.md": "1\n"})
	res, err := w.Pull(context.Background())
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if res.Head.String() != h1 || res.Replayed != 0 {
		t.Errorf("Pull = %+v, want head %s and no replay", res, h1)
	}
	if b, ok, _ := w.ReadFile("h1.md"); !ok || string(b) != "1\n" {
		t.Errorf("ReadFile(h1.md) = %q, %v", b, ok)
	}

	// Local commit pending: replay on top of the human's.
	commitFiles(t, w, "bob", "ours", map[string]string{"b.yaml": "2\n"})
	h2 := humanCommitAndPush(t, human, "human 2", map[string]string{"h2.md": "2\n"})
	res, err = w.Pull(context.Background())
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if res.Replayed != 1 {
		t.Errorf("Replayed = %d, want 1", res.Replayed)
	}
	if n, _ := w.Unpushed(); n != 1 {
		t.Errorf("Unpushed = %d, want 1", n)
	}
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if _, err := gitOutput(remote, "merge-base", "--is-ancestor", h2, "main"); err != nil {
		t.Errorf("human commit is not an ancestor: %v", err)
	}
	if got := runGit(t, remote, "log", "-1", "--format=%an %s", "main"); got != "bob ours" {
		t.Errorf("top commit = %q", got)
	}
	fsck(t, remote)
}

func TestWriter_Open_keepsUnpushedCommitsInDir(t *testing.T) {
	remote := newBareRemote(t)
	dir := filepath.Join(t.TempDir(), "clone")
	w := openWriter(t, remote, dir)
	commitFiles(t, w, "alice", "seed", map[string]string{"a.yaml": "1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	commitFiles(t, w, "bob", "unpushed", map[string]string{"b.yaml": "2\n"})
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	w2 := openWriter(t, remote, dir)
	if n, err := w2.Unpushed(); err != nil || n != 1 {
		t.Fatalf("Unpushed after reopen = %d, %v; want 1", n, err)
	}
	if _, err := w2.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got := runGit(t, remote, "log", "--format=%s", "main"); got != "unpushed\nseed" {
		t.Errorf("log = %q", got)
	}
	fsck(t, dir)
	fsck(t, remote)
}

func TestWriter_ListFiles_subtreeOnly(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	commitFiles(t, w, "alice", "seed", map[string]string{
		"ns1/deploy/web.yaml": "w\n",
		"ns1/svc/web.yaml":    "s\n",
		"ns2/deploy/db.yaml":  "d\n",
		"top.yaml":            "t\n",
	})
	tests := []struct {
		prefix string
		want   []string
	}{
		{prefix: "ns1", want: []string{"ns1/deploy/web.yaml", "ns1/svc/web.yaml"}},
		{prefix: "ns1/svc/", want: []string{"ns1/svc/web.yaml"}},
		{prefix: "top.yaml", want: []string{"top.yaml"}},
		{prefix: "missing", want: nil},
		{prefix: "", want: []string{"ns1/deploy/web.yaml", "ns1/svc/web.yaml", "ns2/deploy/db.yaml", "top.yaml"}},
	}
	for _, tt := range tests {
		t.Run("prefix="+tt.prefix, func(t *testing.T) {
			files, err := w.ListFiles(tt.prefix)
			if err != nil {
				t.Fatalf("ListFiles: %v", err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Path)
				content, _, _ := w.ReadFile(f.Path)
				if f.Hash != BlobHash(content) {
					t.Errorf("%s: hash %s != BlobHash(content)", f.Path, f.Hash)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("ListFiles(%q) = %v, want %v", tt.prefix, got, tt.want)
			}
		})
	}
	if _, err := w.ListFiles("../x"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("ListFiles(../x) error = %v, want ErrInvalidPath", err)
	}
}

func TestWriter_Commit_concurrentCallers(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := w.Commit(context.Background(), CommitRequest{
					Author:  Signature{Name: fmt.Sprintf("user%d", g)},
					Message: fmt.Sprintf("change %d/%d", g, i),
					Changes: []FileChange{{Path: fmt.Sprintf("g%d/f%d.yaml", g, i), Content: []byte("x\n")}},
				})
				if err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Commit: %v", err)
	}
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if n := runGit(t, remote, "rev-list", "--count", "main"); n != fmt.Sprint(workers*each) {
		t.Errorf("commit count = %s, want %d", n, workers*each)
	}
	if files := runGit(t, remote, "ls-tree", "-r", "--name-only", "main"); len(strings.Split(files, "\n")) != workers*each {
		t.Errorf("files = %d, want %d", len(strings.Split(files, "\n")), workers*each)
	}
	fsck(t, remote)
}

func TestOpen_rejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no URL", cfg: Config{Branch: "main", Committer: testCommitter()}},
		{name: "bad branch", cfg: Config{URL: "/tmp/x", Branch: "a..b", Committer: testCommitter()}},
		{name: "no committer", cfg: Config{URL: "/tmp/x", Branch: "main"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(context.Background(), tt.cfg); err == nil {
				t.Fatal("Open succeeded, want an error")
			}
		})
	}
}

// installHook writes an executable pre-receive hook into a bare remote.
func installHook(t *testing.T, remote, script string) {
	t.Helper()
	hook := filepath.Join(remote, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestWriter_Push_raceLostAtRemoteIsReplayed(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	commitFiles(t, w, "alice", "seed", map[string]string{"a.yaml": "1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push seed: %v", err)
	}
	// On the first push only, a "human" commit lands on main while our push
	// is being received, so the remote's compare-and-swap on the old head
	// fails after our ref check passed. The hook writes outside the push
	// quarantine so that its commit survives our rejected push.
	installHook(t, remote, `
[ -e race-done ] && exit 0
touch race-done
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
tree=$(git rev-parse main^{tree})
c=$(echo "racing human" | git commit-tree "$tree" -p main)
git update-ref refs/heads/main "$c"
echo "$c" > race-commit
exit 0
`)
	commitFiles(t, w, "bob", "ours", map[string]string{"b.yaml": "2\n"})
	res, err := w.Push(context.Background())
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if res.Attempts != 2 || res.Replayed != 1 || res.Pushed != 1 {
		t.Errorf("Push result = %+v, want 2 attempts, 1 replayed, 1 pushed", res)
	}
	raced, err := os.ReadFile(filepath.Join(remote, "race-commit"))
	if err != nil {
		t.Fatalf("hook did not run: %v", err)
	}
	if _, err := gitOutput(remote, "merge-base", "--is-ancestor", strings.TrimSpace(string(raced)), "main"); err != nil {
		t.Errorf("racing commit is not an ancestor of main: %v", err)
	}
	if got := runGit(t, remote, "log", "--format=%s", "main"); got != "ours\nracing human\nseed" {
		t.Errorf("log = %q", got)
	}
	fsck(t, remote)
}

func TestWriter_Push_refusedWithoutRaceFailsFast(t *testing.T) {
	remote := newBareRemote(t)
	w := openWriter(t, remote, "")
	commitFiles(t, w, "alice", "seed", map[string]string{"a.yaml": "1\n"})
	if _, err := w.Push(context.Background()); err != nil {
		t.Fatalf("Push seed: %v", err)
	}
	installHook(t, remote, "echo protected branch >&2\nexit 1\n")
	commitFiles(t, w, "bob", "ours", map[string]string{"b.yaml": "2\n"})
	res, err := w.Push(context.Background())
	if !errors.Is(err, ErrPushRejected) {
		t.Fatalf("Push error = %v, want ErrPushRejected", err)
	}
	if res.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1 (a replay cannot fix a refusal)", res.Attempts)
	}
	if n, _ := w.Unpushed(); n != 1 {
		t.Errorf("Unpushed = %d, want our commit kept locally", n)
	}
}
