package gitserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HumanChange is a commit a person makes with the git CLI and pushes to a
// branch, to simulate humans sharing a branch with the operator.
type HumanChange struct {
	// Branch receives the commit; it is created when missing.
	Branch string
	// Files maps slash-separated paths to their new content.
	Files map[string]string
	// Delete lists paths to remove.
	Delete []string
	// Message is the commit message; a default is used when empty.
	Message string
	// AuthorName is the author and committer name; default "Human".
	AuthorName string
	// AuthorEmail is the author and committer e-mail; default
	// "human@example.com".
	AuthorEmail string
}

// PushAsHuman clones repo with the git CLI, applies c in one commit and
// pushes it (never forced), and returns the new commit id. Like a person,
// it retries a rejected push a few times after `git pull --rebase`, so it
// may be used while other clients push to the same branch. The returned
// error carries git's output.
func (s *Server) PushAsHuman(repo string, c HumanChange) (string, error) {
	dir, err := s.existingRepo(repo)
	if err != nil {
		return "", err
	}
	if c.Branch == "" {
		return "", fmt.Errorf("human change to %q names no branch", repo)
	}
	name, email, msg := c.AuthorName, c.AuthorEmail, c.Message
	if name == "" {
		name = "Human"
	}
	if email == "" {
		email = "human@example.com"
	}
	if msg == "" {
		msg = "Change by " + name
	}
	work, err := os.MkdirTemp(s.home, "human-")
	if err != nil {
		return "", fmt.Errorf("create work tree: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()

	env := []string{
		"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email,
		"GIT_COMMITTER_NAME=" + name, "GIT_COMMITTER_EMAIL=" + email,
	}
	wt := func(args ...string) ([]byte, error) {
		return s.gitEnv("", nil, env, append([]string{"-C", work}, args...)...)
	}

	if _, err := s.git("", nil, "clone", "--quiet", "--no-checkout", dir, work); err != nil {
		return "", err
	}
	if _, exists := s.headNoFatal(dir, c.Branch); exists {
		if _, err := wt("checkout", "--quiet", "-B", c.Branch, "origin/"+c.Branch); err != nil {
			return "", err
		}
	} else if _, err := wt("checkout", "--quiet", "--orphan", c.Branch); err != nil {
		return "", err
	}
	for p, content := range c.Files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", fmt.Errorf("create folder for %s: %w", p, err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("write %s: %w", p, err)
		}
	}
	for _, p := range c.Delete {
		if _, err := wt("rm", "--quiet", "--ignore-unmatch", "--", p); err != nil {
			return "", err
		}
	}
	if _, err := wt("add", "--all"); err != nil {
		return "", err
	}
	if _, err := wt("commit", "--quiet", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	var pushErr error
	for attempt := 0; attempt < 5; attempt++ {
		if _, pushErr = wt("push", "--quiet", "origin", "HEAD:refs/heads/"+c.Branch); pushErr == nil {
			out, err := wt("rev-parse", "HEAD")
			if err != nil {
				return "", err
			}
			return strings.TrimSpace(string(out)), nil
		}
		if _, err := wt("pull", "--quiet", "--rebase", "origin", c.Branch); err != nil {
			return "", fmt.Errorf("rebase after rejected push (%v): %w", pushErr, err)
		}
	}
	return "", fmt.Errorf("push to %s of %s kept being rejected: %w", c.Branch, repo, pushErr)
}

func (s *Server) headNoFatal(dir, branch string) (string, bool) {
	out, err := s.git(dir, nil, "for-each-ref", "--format=%(objectname)", "refs/heads/"+branch)
	if err != nil {
		return "", false
	}
	hash := strings.TrimSpace(string(out))
	return hash, hash != ""
}
