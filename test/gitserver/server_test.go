package gitserver

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sshAuth(t *testing.T, srv *Server, pemBytes []byte) transport.AuthMethod {
	t.Helper()
	auth, err := gitssh.NewPublicKeys(SSHUser, pemBytes, "")
	if err != nil {
		t.Fatalf("NewPublicKeys: %v", err)
	}
	auth.HostKeyCallback = ssh.FixedHostKey(srv.HostKey())
	return auth
}

func TestServer_HTTP_clone(t *testing.T) {
	srv := New(t, WithToken("tok-123"))
	httpURL, _ := srv.CreateBareRepo("team/app.git", "main")

	tests := []struct {
		name    string
		auth    transport.AuthMethod
		wantErr error
	}{
		{name: "good password", auth: &githttp.BasicAuth{Username: srv.Username(), Password: srv.Password()}},
		{name: "token with any user", auth: &githttp.BasicAuth{Username: "git", Password: "tok-123"}},
		{name: "wrong password", auth: &githttp.BasicAuth{Username: srv.Username(), Password: "nope"}, wantErr: transport.ErrAuthenticationRequired},
		{name: "no credentials", auth: nil, wantErr: transport.ErrAuthenticationRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, err := git.CloneContext(testContext(t), memory.NewStorage(), memfs.New(), &git.CloneOptions{
				URL: httpURL, Auth: tt.auth,
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("clone error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("clone: %v", err)
			}
			wt, err := repo.Worktree()
			if err != nil {
				t.Fatalf("worktree: %v", err)
			}
			if _, err := wt.Filesystem.Stat("README.md"); err != nil {
				t.Fatalf("README.md missing in clone: %v", err)
			}
		})
	}
}

func TestServer_HTTP_statusCodes(t *testing.T) {
	srv := New(t)
	srv.CreateBareRepo("app.git", "main")

	tests := []struct {
		name       string
		repo       string
		password   string
		wantStatus int
		wantHeader bool
	}{
		{name: "existing repo", repo: "app.git", password: srv.Password(), wantStatus: http.StatusOK},
		{name: "wrong password", repo: "app.git", password: "wrong", wantStatus: http.StatusUnauthorized, wantHeader: true},
		{name: "unknown repo", repo: "missing.git", password: srv.Password(), wantStatus: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(testContext(t), http.MethodGet,
				srv.HTTPURL(tt.repo)+"/info/refs?service=git-upload-pack", nil)
			if err != nil {
				t.Fatalf("new request: %v", err)
			}
			req.SetBasicAuth(srv.Username(), tt.password)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET info/refs: %v", err)
			}
			t.Cleanup(func() { _ = res.Body.Close() })
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if got := res.Header.Get("WWW-Authenticate"); tt.wantHeader != strings.HasPrefix(got, "Basic realm=") {
				t.Fatalf("WWW-Authenticate = %q, want present: %v", got, tt.wantHeader)
			}
		})
	}
}

func TestServer_push_overHTTPAndSSH(t *testing.T) {
	srv := New(t)
	tests := []struct {
		name string
		url  func(repo string) string
		auth func() transport.AuthMethod
	}{
		{
			name: "http",
			url:  srv.HTTPURL,
			auth: func() transport.AuthMethod {
				return &githttp.BasicAuth{Username: srv.Username(), Password: srv.Password()}
			},
		},
		{
			name: "ssh",
			url:  srv.SSHURL,
			auth: func() transport.AuthMethod { return sshAuth(t, srv, srv.ClientPrivateKeyPEM()) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "push-" + tt.name + ".git"
			srv.CreateBareRepo(name, "main")
			ctx := testContext(t)
			repo, err := git.CloneContext(ctx, memory.NewStorage(), memfs.New(), &git.CloneOptions{
				URL: tt.url(name), Auth: tt.auth(),
			})
			if err != nil {
				t.Fatalf("clone: %v", err)
			}
			wt, err := repo.Worktree()
			if err != nil {
				t.Fatalf("worktree: %v", err)
			}
			f, err := wt.Filesystem.Create("apps/cm.yaml")
			if err != nil {
				t.Fatalf("create file: %v", err)
			}
			if _, err := f.Write([]byte("kind: ConfigMap\n")); err != nil {
				t.Fatalf("write file: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close file: %v", err)
			}
			if _, err := wt.Add("apps/cm.yaml"); err != nil {
				t.Fatalf("add: %v", err)
			}
			sig := &object.Signature{Name: "alice", Email: "alice@example.com", When: time.Now()}
			hash, err := wt.Commit("Add cm", &git.CommitOptions{Author: sig, Committer: &object.Signature{
				Name: "gitops-reverser", Email: "bot@example.com", When: time.Now(),
			}})
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if err := repo.PushContext(ctx, &git.PushOptions{Auth: tt.auth()}); err != nil {
				t.Fatalf("push: %v", err)
			}

			if head, ok := srv.Head(name, "main"); !ok || head != hash.String() {
				t.Fatalf("Head = %q, %v; want %s", head, ok, hash)
			}
			got, err := srv.ReadFile(name, "main", "apps/cm.yaml")
			if err != nil || string(got) != "kind: ConfigMap\n" {
				t.Fatalf("ReadFile = %q, %v", got, err)
			}
			log := srv.Log(name, "main")
			if len(log) != 2 {
				t.Fatalf("log has %d commits, want 2", len(log))
			}
			want := Commit{
				Hash: hash.String(), Parents: []string{log[1].Hash},
				AuthorName: "alice", AuthorEmail: "alice@example.com",
				CommitterName: "gitops-reverser", CommitterEmail: "bot@example.com",
				Message: "Add cm",
			}
			got0 := log[0]
			got0.Message = strings.TrimSpace(got0.Message)
			if !equalCommit(got0, want) {
				t.Fatalf("newest commit = %+v, want %+v", got0, want)
			}
			if files := srv.ListFiles(name, "main"); !slices.Equal(files, []string{"README.md", "apps/cm.yaml"}) {
				t.Fatalf("ListFiles = %v", files)
			}
		})
	}
}

func equalCommit(a, b Commit) bool {
	return a.Hash == b.Hash && slices.Equal(a.Parents, b.Parents) && a.AuthorName == b.AuthorName &&
		a.AuthorEmail == b.AuthorEmail && a.CommitterName == b.CommitterName &&
		a.CommitterEmail == b.CommitterEmail && a.Message == b.Message
}

func TestServer_SSH_errors(t *testing.T) {
	srv := New(t)
	srv.CreateBareRepo("app.git", "main")
	otherKey, _, err := GenerateClientKey("")
	if err != nil {
		t.Fatalf("GenerateClientKey: %v", err)
	}
	tests := []struct {
		name    string
		repo    string
		key     []byte
		wantErr error // nil: any error
	}{
		{name: "unauthorized key", repo: "app.git", key: otherKey},
		{name: "unknown repo", repo: "missing.git", key: srv.ClientPrivateKeyPEM(), wantErr: transport.ErrRepositoryNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{srv.SSHURL(tt.repo)}})
			_, err := r.ListContext(testContext(t), &git.ListOptions{Auth: sshAuth(t, srv, tt.key)})
			if err == nil {
				t.Fatal("ls-remote succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestServer_SSH_passphraseKey(t *testing.T) {
	srv := New(t)
	srv.CreateBareRepo("app.git", "main")
	pemBytes, pub, err := GenerateClientKey("open sesame")
	if err != nil {
		t.Fatalf("GenerateClientKey: %v", err)
	}
	srv.AuthorizeKey(pub)
	auth, err := gitssh.NewPublicKeys(SSHUser, pemBytes, "open sesame")
	if err != nil {
		t.Fatalf("NewPublicKeys: %v", err)
	}
	auth.HostKeyCallback = ssh.FixedHostKey(srv.HostKey())
	r := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{srv.SSHURL("app.git")}})
	refs, err := r.ListContext(testContext(t), &git.ListOptions{Auth: auth})
	if err != nil {
		t.Fatalf("ls-remote: %v", err)
	}
	head, _ := srv.Head("app.git", "main")
	if !slices.ContainsFunc(refs, func(ref *plumbing.Reference) bool {
		return ref.Name() == plumbing.NewBranchReferenceName("main") && ref.Hash().String() == head
	}) {
		t.Fatalf("refs %v lack main at %s", refs, head)
	}
}

func TestServer_KnownHostsLine_format(t *testing.T) {
	srv := New(t)
	line := srv.KnownHostsLine()
	want := "[127.0.0.1]:" + strings.Split(srv.SSHAddr(), ":")[1] + " ssh-ed25519 "
	if !strings.HasPrefix(line, want) || !strings.HasSuffix(line, "\n") {
		t.Fatalf("KnownHostsLine = %q, want prefix %q", line, want)
	}
	_, hosts, key, _, _, err := ssh.ParseKnownHosts([]byte(line))
	if err != nil {
		t.Fatalf("parse known_hosts line: %v", err)
	}
	if len(hosts) != 1 || string(key.Marshal()) != string(srv.HostKey().Marshal()) {
		t.Fatalf("parsed hosts %v key %v", hosts, key.Type())
	}
}

func TestServer_PushAsHuman_andForcePushRejected(t *testing.T) {
	srv := New(t)
	srv.CreateBareRepo("app.git", "main")
	base, _ := srv.Head("app.git", "main")

	first, err := srv.PushAsHuman("app.git", HumanChange{
		Branch: "main", Files: map[string]string{"a/one.yaml": "one: 1\n"},
		Message: "human one", AuthorName: "Bob", AuthorEmail: "bob@example.com",
	})
	if err != nil {
		t.Fatalf("PushAsHuman: %v", err)
	}
	second, err := srv.PushAsHuman("app.git", HumanChange{Branch: "main", Delete: []string{"README.md"}})
	if err != nil {
		t.Fatalf("PushAsHuman delete: %v", err)
	}
	log := srv.Log("app.git", "main")
	if len(log) != 3 || log[0].Hash != second || log[1].Hash != first || log[2].Hash != base {
		t.Fatalf("log = %+v, want %s %s %s", log, second, first, base)
	}
	if log[1].AuthorName != "Bob" || strings.TrimSpace(log[1].Message) != "human one" {
		t.Fatalf("human commit = %+v", log[1])
	}
	if files := srv.ListFiles("app.git", "main"); !slices.Equal(files, []string{"a/one.yaml"}) {
		t.Fatalf("ListFiles = %v", files)
	}
	if _, err := srv.ReadFile("app.git", "main", "README.md"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile deleted file error = %v, want fs.ErrNotExist", err)
	}

	// A new branch is created from nothing (orphan).
	other, err := srv.PushAsHuman("app.git", HumanChange{Branch: "other", Files: map[string]string{"x": "y"}})
	if err != nil {
		t.Fatalf("PushAsHuman new branch: %v", err)
	}
	if head, ok := srv.Head("app.git", "other"); !ok || head != other {
		t.Fatalf("Head(other) = %q, %v; want %s", head, ok, other)
	}

	// Force-pushing the old base over main must be refused by the server.
	ctx := testContext(t)
	repo, err := git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{
		URL: srv.HTTPURL("app.git"), Auth: &githttp.BasicAuth{Username: srv.Username(), Password: srv.Password()},
	})
	if err != nil {
		t.Fatalf("clone: %v", err)
	}
	err = repo.PushContext(ctx, &git.PushOptions{
		Auth:     &githttp.BasicAuth{Username: srv.Username(), Password: srv.Password()},
		RefSpecs: []config.RefSpec{config.RefSpec("+" + base + ":refs/heads/main")},
	})
	if err == nil {
		t.Fatal("force push succeeded, want it refused")
	}
	if head, _ := srv.Head("app.git", "main"); head != second {
		t.Fatalf("main moved to %s after refused force push", head)
	}
}

func TestServer_AllBlobs_includesUnreachable(t *testing.T) {
	srv := New(t)
	srv.CreateBareRepo("app.git", "main")
	if _, err := srv.PushAsHuman("app.git", HumanChange{Branch: "main", Files: map[string]string{"s.yaml": "value: hunter2\n"}}); err != nil {
		t.Fatalf("PushAsHuman: %v", err)
	}
	if _, err := srv.PushAsHuman("app.git", HumanChange{Branch: "main", Files: map[string]string{"s.yaml": "value: REDACTED\n"}}); err != nil {
		t.Fatalf("PushAsHuman: %v", err)
	}
	var found []string
	for _, content := range srv.AllBlobs("app.git") {
		found = append(found, string(content))
	}
	for _, want := range []string{"# app.git\n", "value: hunter2\n", "value: REDACTED\n"} {
		if !slices.Contains(found, want) {
			t.Fatalf("AllBlobs = %q, lacks %q", found, want)
		}
	}
}

func TestServer_gitCLI_cloneOverHTTP(t *testing.T) {
	srv := New(t)
	srv.CreateBareRepo("app.git", "main")
	dst := filepath.Join(t.TempDir(), "clone")
	u := strings.Replace(srv.HTTPURL("app.git"), "http://", "http://"+srv.Username()+":"+srv.Password()+"@", 1)
	cmd := exec.Command("git", "clone", "--quiet", u, dst)
	cmd.Env = append(srv.baseEnv(), "GIT_PROTOCOL=version=2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dst, "README.md")); err != nil {
		t.Fatalf("README.md missing: %v", err)
	}
}

func TestServer_CreateBareRepo_empty(t *testing.T) {
	srv := New(t)
	httpURL, sshURL := srv.CreateBareRepo("empty.git", "")
	if !strings.HasSuffix(httpURL, "/empty.git") || !strings.HasPrefix(sshURL, "ssh://git@127.0.0.1:") {
		t.Fatalf("URLs = %q, %q", httpURL, sshURL)
	}
	if _, ok := srv.Head("empty.git", "main"); ok {
		t.Fatal("empty repository has a main branch")
	}
	if blobs := srv.AllBlobs("empty.git"); len(blobs) != 0 {
		t.Fatalf("empty repository has %d blobs", len(blobs))
	}
	r := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{sshURL}})
	_, err := r.ListContext(testContext(t), &git.ListOptions{Auth: sshAuth(t, srv, srv.ClientPrivateKeyPEM())})
	if !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		t.Fatalf("ls-remote of empty repository error = %v, want ErrEmptyRemoteRepository", err)
	}
}

func TestParseGitCommand_quoting(t *testing.T) {
	tests := []struct {
		command     string
		wantService string
		wantRepo    string
		wantErr     bool
	}{
		{command: "git-upload-pack '/team/app.git'", wantService: "upload-pack", wantRepo: "team/app.git"},
		{command: "git-receive-pack 'app.git'", wantService: "receive-pack", wantRepo: "app.git"},
		{command: `git upload-pack "/my repo.git"`, wantService: "upload-pack", wantRepo: "my repo.git"},
		{command: `git-upload-pack '/it'\''s.git'`, wantService: "upload-pack", wantRepo: "it's.git"},
		{command: "git-upload-pack '/../../etc.git'", wantService: "upload-pack", wantRepo: "etc.git"},
		{command: "rm -rf /", wantErr: true},
		{command: "git-upload-pack 'unterminated", wantErr: true},
		{command: "git-upload-pack '/'", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			service, repo, err := parseGitCommand(tt.command)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tt.wantErr)
			}
			if service != tt.wantService || repo != tt.wantRepo {
				t.Fatalf("got %q %q, want %q %q", service, repo, tt.wantService, tt.wantRepo)
			}
		})
	}
}
