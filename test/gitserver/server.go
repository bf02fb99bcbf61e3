package gitserver

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Default credentials of a Server created without WithBasicAuth.
const (
	// DefaultUsername is the HTTP basic auth user name accepted by default.
	DefaultUsername = "tester"
	// DefaultPassword is the HTTP basic auth password accepted by default.
	DefaultPassword = "tester-password"
	// SSHUser is the user name in the SSH URLs the Server hands out. The
	// server accepts any user name; only the key is checked.
	SSHUser = "git"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	username string
	password string
	token    string
	httpAddr string
}

// WithHTTPAddr makes the HTTP endpoint listen on addr (e.g.
// 127.0.0.1:8418) instead of a free port, for a fixed local URL.
func WithHTTPAddr(addr string) Option {
	return func(o *options) { o.httpAddr = addr }
}

// WithBasicAuth sets the user name and password the HTTP endpoint accepts.
func WithBasicAuth(username, password string) Option {
	return func(o *options) {
		o.username = username
		o.password = password
	}
}

// WithToken makes the HTTP endpoint also accept token as the basic auth
// password with any user name, the way Git hosting services accept
// personal access tokens.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// Server is a Git server for tests, serving bare repositories over smart
// HTTP and SSH. Create it with New; it is closed by the test's cleanup.
type Server struct {
	tb      TB
	opts    options
	root    string
	home    string
	gitPath string
	backend string

	httpSrv *httptest.Server

	sshListener net.Listener
	sshConfig   *ssh.ServerConfig
	hostKey     ssh.PublicKey
	clientPEM   []byte

	mu         sync.Mutex
	authorized map[string]bool
	conns      map[net.Conn]struct{}
	closed     bool
	down       map[string]bool

	wg sync.WaitGroup
}

// New starts a Server whose repositories live in a temporary directory of
// tb, and registers its Close with tb.Cleanup. It fails the test when the
// git binary or a listener is not available. It generates one authorized
// client key pair (see ClientPrivateKeyPEM).
func New(tb TB, opts ...Option) *Server {
	tb.Helper()
	o := options{username: DefaultUsername, password: DefaultPassword}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := start(tb, o)
	if err != nil {
		tb.Fatalf("gitserver: start: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

func start(tb TB, o options) (*Server, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("find git binary: %w", err)
	}
	base := tb.TempDir()
	s := &Server{
		tb:         tb,
		opts:       o,
		root:       filepath.Join(base, "repos"),
		home:       filepath.Join(base, "home"),
		gitPath:    gitPath,
		authorized: map[string]bool{},
		conns:      map[net.Conn]struct{}{},
	}
	for _, dir := range []string{s.root, s.home} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	execPath, err := s.git("", nil, "--exec-path")
	if err != nil {
		return nil, fmt.Errorf("find git exec path: %w", err)
	}
	s.backend = filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(s.backend); err != nil {
		return nil, fmt.Errorf("find git-http-backend: %w", err)
	}

	if err := s.startSSH(); err != nil {
		return nil, err
	}
	s.httpSrv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	if o.httpAddr != "" {
		l, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			_ = s.sshListener.Close()
			return nil, fmt.Errorf("listen on %s: %w", o.httpAddr, err)
		}
		_ = s.httpSrv.Listener.Close()
		s.httpSrv.Listener = l
	}
	s.httpSrv.Start()
	return s, nil
}

// Close stops both listeners, drops open SSH connections and waits for
// their handlers. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	_ = s.sshListener.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	if s.httpSrv != nil {
		s.httpSrv.Close()
	}
	s.wg.Wait()
}

// Username is the HTTP basic auth user name the server accepts.
func (s *Server) Username() string { return s.opts.username }

// Password is the HTTP basic auth password the server accepts.
func (s *Server) Password() string { return s.opts.password }

// Token is the token accepted as a password with any user name, or "".
func (s *Server) Token() string { return s.opts.token }

// HTTPURL is the smart-HTTP URL of repo, e.g. http://127.0.0.1:1234/team/app.git.
func (s *Server) HTTPURL(repo string) string {
	return s.httpSrv.URL + "/" + strings.TrimPrefix(repo, "/")
}

// SSHURL is the SSH URL of repo, e.g. ssh://git@127.0.0.1:2222/team/app.git.
func (s *Server) SSHURL(repo string) string {
	return "ssh://" + SSHUser + "@" + s.sshListener.Addr().String() + "/" + strings.TrimPrefix(repo, "/")
}

// SSHAddr is the host:port the SSH server listens on.
func (s *Server) SSHAddr() string { return s.sshListener.Addr().String() }

// HostKey is the SSH server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey }

// KnownHostsLine is a known_hosts line for the SSH listener, in the form
// `[127.0.0.1]:port ssh-ed25519 AAAA...`, ending with a newline.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{s.SSHAddr()}, s.hostKey) + "\n"
}

// ClientPrivateKeyPEM is the PEM private key of the client key pair the
// server authorized at start, usable with go-git's ssh.NewPublicKeys.
func (s *Server) ClientPrivateKeyPEM() []byte { return bytes.Clone(s.clientPEM) }

// AuthorizeKey adds pub to the keys the SSH server accepts.
func (s *Server) AuthorizeKey(pub ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorized[string(pub.Marshal())] = true
}

// RepoPath is the directory of the bare repository repo on disk.
func (s *Server) RepoPath(repo string) string {
	return filepath.Join(s.root, filepath.FromSlash(path.Clean("/"+repo)))
}

// CreateBareRepo creates the bare repository name (a relative path such as
// "team/app.git") and returns its HTTP and SSH URLs. With a non-empty
// initialBranch the repository gets one initial commit holding README.md on
// that branch, and HEAD points at it; otherwise the repository is empty
// with HEAD pointing at "main". It fails the test on error.
func (s *Server) CreateBareRepo(name, initialBranch string) (httpURL, sshURL string) {
	s.tb.Helper()
	if err := s.createBareRepo(name, initialBranch); err != nil {
		s.tb.Fatalf("gitserver: create repository %q: %v", name, err)
	}
	return s.HTTPURL(name), s.SSHURL(name)
}

func (s *Server) createBareRepo(name, initialBranch string) error {
	clean := path.Clean("/" + name)
	if name == "" || clean == "/" || clean != "/"+strings.TrimPrefix(name, "/") {
		return fmt.Errorf("invalid repository name %q", name)
	}
	dir := s.RepoPath(name)
	head := initialBranch
	if head == "" {
		head = "main"
	}
	if _, err := s.git("", nil, "init", "--quiet", "--bare", "--initial-branch="+head, dir); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"receive.denyNonFastForwards", "true"},
		{"receive.denyDeletes", "true"},
	} {
		if _, err := s.git(dir, nil, "config", kv[0], kv[1]); err != nil {
			return err
		}
	}
	if initialBranch == "" {
		return nil
	}
	blob, err := s.git(dir, strings.NewReader("# "+name+"\n"), "hash-object", "-w", "--stdin")
	if err != nil {
		return err
	}
	tree, err := s.git(dir, strings.NewReader("100644 blob "+strings.TrimSpace(string(blob))+"\tREADME.md\n"), "mktree")
	if err != nil {
		return err
	}
	commit, err := s.gitEnv(dir, nil, []string{
		"GIT_AUTHOR_NAME=Initial Author", "GIT_AUTHOR_EMAIL=initial@example.com",
		"GIT_COMMITTER_NAME=Initial Author", "GIT_COMMITTER_EMAIL=initial@example.com",
	}, "commit-tree", "-m", "Initial commit", strings.TrimSpace(string(tree)))
	if err != nil {
		return err
	}
	_, err = s.git(dir, nil, "update-ref", "refs/heads/"+initialBranch, strings.TrimSpace(string(commit)))
	return err
}

// serveHTTP checks basic auth and hands the request to git http-backend.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.refuseIfDown(w, r) {
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || !s.validHTTPCredentials(user, pass) {
		w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	h := &cgi.Handler{
		Path: s.backend,
		Root: "/",
		Dir:  s.root,
		Env: append(s.baseEnv(),
			"GIT_PROJECT_ROOT="+s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			// REMOTE_USER enables receive-pack (push) in http-backend.
			"REMOTE_USER="+user,
		),
		Stderr: newLogWriter(s.tb, "http-backend"),
	}
	h.ServeHTTP(w, r)
}

func (s *Server) validHTTPCredentials(user, pass string) bool {
	if s.opts.token != "" && subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.token)) == 1 {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.password)) == 1
}

// baseEnv isolates every git process from the machine's configuration.
func (s *Server) baseEnv() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.home,
		"XDG_CONFIG_HOME=" + filepath.Join(s.home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
		"LANG=C",
	}
}

// git runs the git CLI in dir (a bare repository, or "" for none) and
// returns its standard output.
func (s *Server) git(dir string, stdin *strings.Reader, args ...string) ([]byte, error) {
	return s.gitEnv(dir, stdin, nil, args...)
}

func (s *Server) gitEnv(dir string, stdin *strings.Reader, env []string, args ...string) ([]byte, error) {
	if dir != "" {
		args = append([]string{"--git-dir=" + dir}, args...)
	}
	cmd := exec.Command(s.gitPath, args...)
	cmd.Env = append(s.baseEnv(), env...)
	cmd.Dir = s.home
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, &GitError{Args: args, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

// GitError is a failed git CLI call made by the Server.
type GitError struct {
	// Args are the git arguments.
	Args []string
	// Stderr is what git printed on standard error.
	Stderr string
	// Err is the process error.
	Err error
}

// Error describes the call and what git printed.
func (e *GitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

// Unwrap returns the process error.
func (e *GitError) Unwrap() error { return e.Err }

// logWriter forwards a process's stderr to the test log, line by line.
type logWriter struct {
	tb     TB
	prefix string
}

func newLogWriter(tb TB, prefix string) *logWriter {
	return &logWriter{tb: tb, prefix: prefix}
}

// Write logs each line of p through the test's log.
func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w.tb.Logf("gitserver %s: %s", w.prefix, line)
		}
	}
	return len(p), nil
}

// TB is the part of testing.TB the server uses. *testing.T, Ginkgo's
// GinkgoT() and a program's own adapter (for `make run`'s local mode) all
// satisfy it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}
