package gitstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/gitops-reverser/gitops-reverser/test/gitserver"
)

const remoteTestToken = "tok-remote-7f3a"

func remoteTestContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// remoteTestServer starts a server with "app.git" (branch main) and
// "empty.git" (no commits).
func remoteTestServer(t *testing.T) *gitserver.Server {
	t.Helper()
	srv := gitserver.New(t, gitserver.WithToken(remoteTestToken))
	srv.CreateBareRepo("app.git", "main")
	srv.CreateBareRepo("empty.git", "")
	return srv
}

func httpSecret(srv *gitserver.Server) map[string][]byte {
	return map[string][]byte{"username": []byte(srv.Username()), "password": []byte(srv.Password())}
}

func sshSecret(srv *gitserver.Server) map[string][]byte {
	return map[string][]byte{"identity": srv.ClientPrivateKeyPEM(), "known_hosts": []byte(srv.KnownHostsLine())}
}

// closedPortURL returns an http URL on a port nobody listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return "http://" + addr + "/app.git"
}

func TestCheckRemote_CheckRemote_reasons(t *testing.T) {
	srv := remoteTestServer(t)
	mainHead, ok := srv.Head("app.git", "main")
	if !ok {
		t.Fatal("app.git has no main")
	}
	otherKey, _, err := gitserver.GenerateClientKey("")
	if err != nil {
		t.Fatalf("GenerateClientKey: %v", err)
	}
	encKey, encPub, err := gitserver.GenerateClientKey("key-pass-3")
	if err != nil {
		t.Fatalf("GenerateClientKey: %v", err)
	}
	srv.AuthorizeKey(encPub)
	foreignHostKey := authTestKey(t).PublicKey()
	wrongKnownHosts := knownhosts.Line([]string{srv.SSHAddr()}, foreignHostKey) + "\n"
	otherHostKnownHosts := knownhosts.Line([]string{"[127.0.0.1]:1"}, srv.HostKey()) + "\n"

	tests := []struct {
		name       string
		url        string
		secret     map[string][]byte
		branch     string
		wantReason string // "" means success with Head == mainHead
		wantHostKe bool   // the error wraps a *HostKeyError
		secrets    []string
	}{
		{name: "http good credentials", url: srv.HTTPURL("app.git"), secret: httpSecret(srv), branch: "main"},
		{name: "http token", url: srv.HTTPURL("app.git"),
			secret: map[string][]byte{"token": []byte(remoteTestToken)}, branch: "main"},
		{name: "http wrong password", url: srv.HTTPURL("app.git"),
			secret: map[string][]byte{"username": []byte(srv.Username()), "password": []byte("wrong-pw-5")},
			branch: "main", wantReason: ReasonAuthenticationFailed, secrets: []string{"wrong-pw-5"}},
		{name: "http password in URL", url: strings.Replace(srv.HTTPURL("app.git"), "http://", "http://"+srv.Username()+":url-pw-8@", 1),
			branch: "main", wantReason: ReasonAuthenticationFailed, secrets: []string{"url-pw-8"}},
		{name: "http no credentials", url: srv.HTTPURL("app.git"), branch: "main", wantReason: ReasonAuthenticationFailed},
		{name: "http wrong URL", url: srv.HTTPURL("missing.git"), secret: httpSecret(srv),
			branch: "main", wantReason: ReasonRepositoryNotFound},
		{name: "http missing branch", url: srv.HTTPURL("app.git"), secret: httpSecret(srv),
			branch: "release", wantReason: ReasonBranchNotFound},
		{name: "http empty repository", url: srv.HTTPURL("empty.git"), secret: httpSecret(srv),
			branch: "main", wantReason: ReasonBranchNotFound},
		{name: "http unreachable", url: closedPortURL(t), secret: httpSecret(srv),
			branch: "main", wantReason: ReasonRemoteUnreachable},
		{name: "ssh good key", url: srv.SSHURL("app.git"), secret: sshSecret(srv), branch: "main"},
		{name: "ssh encrypted key", url: srv.SSHURL("app.git"), branch: "main",
			secret: map[string][]byte{"identity": encKey, "password": []byte("key-pass-3"), "known_hosts": []byte(srv.KnownHostsLine())}},
		{name: "ssh wrong key", url: srv.SSHURL("app.git"), branch: "main", wantReason: ReasonAuthenticationFailed,
			secret: map[string][]byte{"identity": otherKey, "known_hosts": []byte(srv.KnownHostsLine())}},
		{name: "ssh wrong known_hosts", url: srv.SSHURL("app.git"), branch: "main",
			wantReason: ReasonRemoteUnreachable, wantHostKe: true,
			secret: map[string][]byte{"identity": srv.ClientPrivateKeyPEM(), "known_hosts": []byte(wrongKnownHosts)}},
		{name: "ssh host not in known_hosts", url: srv.SSHURL("app.git"), branch: "main",
			wantReason: ReasonRemoteUnreachable, wantHostKe: true,
			secret: map[string][]byte{"identity": srv.ClientPrivateKeyPEM(), "known_hosts": []byte(otherHostKnownHosts)}},
		{name: "ssh wrong URL", url: srv.SSHURL("missing.git"), secret: sshSecret(srv),
			branch: "main", wantReason: ReasonRepositoryNotFound},
		{name: "ssh missing branch", url: srv.SSHURL("app.git"), secret: sshSecret(srv),
			branch: "release", wantReason: ReasonBranchNotFound},
		{name: "invalid branch name", url: srv.HTTPURL("app.git"), secret: httpSecret(srv),
			branch: "bad..name", wantReason: ReasonBranchNotFound},
		{name: "unsupported scheme", url: "ftp://127.0.0.1/app.git", branch: "main", wantReason: ReasonInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := AuthFromSecret(tt.url, tt.secret)
			if err != nil {
				if tt.wantReason != ReasonOf(err) {
					t.Fatalf("AuthFromSecret: %v", err)
				}
				return
			}
			state, err := CheckRemote(remoteTestContext(t), RemoteSpec{URL: tt.url, Branch: tt.branch}, auth)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("CheckRemote: %v", err)
				}
				if state.Head != mainHead || state.BranchCreated || state.EmptyRepository {
					t.Fatalf("state = %+v, want Head %s only", state, mainHead)
				}
				return
			}
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("error = %v, want *RemoteError", err)
			}
			if re.Reason != tt.wantReason {
				t.Fatalf("reason = %q (%v), want %q", re.Reason, err, tt.wantReason)
			}
			var hkErr *HostKeyError
			if tt.wantHostKe != errors.As(err, &hkErr) {
				t.Fatalf("error %v wraps HostKeyError: %v, want %v", err, !tt.wantHostKe, tt.wantHostKe)
			}
			if !strings.Contains(err.Error(), "127.0.0.1") {
				t.Fatalf("message %q does not name the URL", err)
			}
			if tt.wantReason == ReasonBranchNotFound && !strings.Contains(err.Error(), tt.branch) {
				t.Fatalf("message %q does not name the branch", err)
			}
			for _, s := range append(tt.secrets, srv.Password(), remoteTestToken) {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("message %q contains a secret value", err)
				}
			}
			if state.Head != "" {
				t.Fatalf("failed check reports Head %q", state.Head)
			}
		})
	}
}

func TestCheckRemote_CheckRemote_createBranch(t *testing.T) {
	srv := remoteTestServer(t)
	mainHead, _ := srv.Head("app.git", "main")
	tests := []struct {
		name      string
		url       func(string) string
		secret    map[string][]byte
		repo      string
		branch    string
		wantEmpty bool
	}{
		{name: "http from default branch", url: srv.HTTPURL, secret: httpSecret(srv), repo: "app.git", branch: "records"},
		{name: "ssh from default branch", url: srv.SSHURL, secret: sshSecret(srv), repo: "app.git", branch: "ssh/records"},
		{name: "http empty repository", url: srv.HTTPURL, secret: httpSecret(srv), repo: "empty.git", branch: "main", wantEmpty: true},
		{name: "ssh empty repository", url: srv.SSHURL, secret: sshSecret(srv), repo: "empty-ssh.git", branch: "cluster", wantEmpty: true},
	}
	srv.CreateBareRepo("empty-ssh.git", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url(tt.repo)
			auth, err := AuthFromSecret(url, tt.secret)
			if err != nil {
				t.Fatalf("AuthFromSecret: %v", err)
			}
			ctx := remoteTestContext(t)
			spec := RemoteSpec{URL: url, Branch: tt.branch, CreateBranch: true}
			state, err := CheckRemote(ctx, spec, auth)
			if err != nil {
				t.Fatalf("CheckRemote: %v", err)
			}
			if !state.BranchCreated || state.EmptyRepository != tt.wantEmpty {
				t.Fatalf("state = %+v, want created, empty %v", state, tt.wantEmpty)
			}
			if head, ok := srv.Head(tt.repo, tt.branch); !ok || head != state.Head {
				t.Fatalf("server branch at %q (exists %v), CheckRemote says %q", head, ok, state.Head)
			}
			if tt.wantEmpty {
				log := srv.Log(tt.repo, tt.branch)
				if len(log) != 1 || len(log[0].Parents) != 0 || log[0].CommitterName != InitCommitterName {
					t.Fatalf("log = %+v, want one root commit by %s", log, InitCommitterName)
				}
				if files := srv.ListFiles(tt.repo, tt.branch); len(files) != 0 {
					t.Fatalf("root commit has files %v", files)
				}
			} else if state.Head != mainHead {
				t.Fatalf("new branch at %s, want main's %s", state.Head, mainHead)
			}

			// The branch is now visible to a plain ls-remote, and a second
			// check creates nothing.
			spec.CreateBranch = false
			again, err := CheckRemote(ctx, spec, auth)
			if err != nil {
				t.Fatalf("second CheckRemote: %v", err)
			}
			if again.Head != state.Head || again.BranchCreated || again.EmptyRepository {
				t.Fatalf("second state = %+v, want Head %s only", again, state.Head)
			}
		})
	}
}

func TestCheckRemote_CheckRemote_createBranchExistingIsNoOp(t *testing.T) {
	srv := remoteTestServer(t)
	before := srv.Log("app.git", "main")
	url := srv.HTTPURL("app.git")
	auth, err := AuthFromSecret(url, httpSecret(srv))
	if err != nil {
		t.Fatalf("AuthFromSecret: %v", err)
	}
	state, err := CheckRemote(remoteTestContext(t), RemoteSpec{URL: url, Branch: "main", CreateBranch: true}, auth)
	if err != nil {
		t.Fatalf("CheckRemote: %v", err)
	}
	if state.BranchCreated || state.Head != before[0].Hash {
		t.Fatalf("state = %+v, want existing head %s", state, before[0].Hash)
	}
	if after := srv.Log("app.git", "main"); len(after) != len(before) {
		t.Fatalf("log grew from %d to %d commits", len(before), len(after))
	}
}

func TestCheckRemote_CheckRemote_createBranchNotPermitted(t *testing.T) {
	srv := remoteTestServer(t)
	url := strings.Replace(srv.HTTPURL("app.git"), "http://", "http://reader:wrong-pw-2@", 1)
	_, err := CheckRemote(remoteTestContext(t), RemoteSpec{URL: url, Branch: "new", CreateBranch: true}, nil)
	if got := ReasonOf(err); got != ReasonAuthenticationFailed {
		t.Fatalf("reason = %q (%v), want %q", got, err, ReasonAuthenticationFailed)
	}
	if strings.Contains(err.Error(), "wrong-pw-2") {
		t.Fatalf("message %q contains the URL password", err)
	}
	if _, ok := srv.Head("app.git", "new"); ok {
		t.Fatal("branch created without credentials")
	}
}

func TestCheckRemote_createBranch_concurrentCreatorWins(t *testing.T) {
	srv := remoteTestServer(t)
	url := srv.HTTPURL("app.git")
	auth, err := AuthFromSecret(url, httpSecret(srv))
	if err != nil {
		t.Fatalf("AuthFromSecret: %v", err)
	}
	ctx := remoteTestContext(t)
	c, err := newRemoteCheck(RemoteSpec{URL: url, Branch: "race", CreateBranch: true}, auth)
	if err != nil {
		t.Fatalf("newRemoteCheck: %v", err)
	}
	stale, _, err := c.list(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	// A human creates the branch between our ls-remote and our push.
	human, err := srv.PushAsHuman("app.git", gitserver.HumanChange{Branch: "race", Files: map[string]string{"h.txt": "h\n"}})
	if err != nil {
		t.Fatalf("PushAsHuman: %v", err)
	}
	head, created, err := c.createBranch(ctx, stale)
	if err != nil {
		t.Fatalf("createBranch: %v", err)
	}
	if created || head.String() != human {
		t.Fatalf("createBranch = %s, created %v; want the human's %s, not created", head, created, human)
	}
	if got, _ := srv.Head("app.git", "race"); got != human {
		t.Fatalf("branch moved to %s, want the human's %s kept", got, human)
	}
}
