package gitstore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Helpers shared by the writer tests and benchmarks. Tests drive the real
// git CLI only to set up remotes, act as a human and verify results.

func requireGit(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git CLI not installed")
	}
}

// gitEnv isolates the git CLI from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Human Dev",
		"GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Human Dev",
		"GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// runGit runs git in dir and returns trimmed stdout; it fails the test on
// error.
func runGit(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := gitOutput(dir, args...)
	if err != nil {
		tb.Fatalf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return out
}

func gitOutput(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(os.TempDir())
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// newBareRemote creates an empty bare repository whose default branch is
// main.
func newBareRemote(tb testing.TB) string {
	tb.Helper()
	requireGit(tb)
	dir := filepath.Join(tb.TempDir(), "remote.git")
	runGit(tb, "", "init", "-q", "--bare", "--initial-branch=main", dir)
	return dir
}

// humanClone clones remote into a fresh worktree for a simulated human.
func humanClone(tb testing.TB, remote string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "human")
	runGit(tb, "", "clone", "-q", remote, dir)
	runGit(tb, dir, "checkout", "-q", "-B", "main")
	return dir
}

// humanCommitAndPush writes files (path -> content, "" deletes) in the
// human's worktree, commits and pushes to main. It pulls first so that the
// human works on the current remote head.
func humanCommitAndPush(tb testing.TB, dir, message string, files map[string]string) string {
	tb.Helper()
	if out, err := gitOutput(dir, "ls-remote", "--heads", "origin", "main"); err == nil && out != "" {
		runGit(tb, dir, "pull", "-q", "--ff-only", "origin", "main")
	}
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if content == "" {
			runGit(tb, dir, "rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
		runGit(tb, dir, "add", p)
	}
	runGit(tb, dir, "commit", "-q", "-m", message)
	runGit(tb, dir, "push", "-q", "origin", "HEAD:main")
	return runGit(tb, dir, "rev-parse", "HEAD")
}

// fsck fails the test if git fsck finds any problem in repo.
func fsck(tb testing.TB, repo string) {
	tb.Helper()
	runGit(tb, repo, "fsck", "--strict", "--no-dangling")
}

func testCommitter() Signature {
	return Signature{Name: "gitops-reverser", Email: "operator@example.com"}
}

func openWriter(tb testing.TB, remote, dir string) *Writer {
	tb.Helper()
	w, err := Open(context.Background(), Config{
		URL:       remote,
		Branch:    "main",
		Dir:       dir,
		Committer: testCommitter(),
	})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = w.Close() })
	return w
}

func commitFiles(tb testing.TB, w *Writer, author, message string, files map[string]string) string {
	tb.Helper()
	var changes []FileChange
	for p, content := range files {
		if content == "" {
			changes = append(changes, FileChange{Path: p, Delete: true})
		} else {
			changes = append(changes, FileChange{Path: p, Content: []byte(content)})
		}
	}
	h, err := w.Commit(context.Background(), CommitRequest{
		Author:  Signature{Name: author, Email: author + "@example.com"},
		Message: message,
		Changes: changes,
	})
	if err != nil {
		tb.Fatalf("Commit(%s): %v", message, err)
	}
	return h.String()
}
