package gitserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Commit is one commit as the git CLI reports it.
type Commit struct {
	// Hash is the full commit id.
	Hash string
	// Parents are the parent commit ids, first parent first.
	Parents []string
	// AuthorName is the author's name.
	AuthorName string
	// AuthorEmail is the author's e-mail address.
	AuthorEmail string
	// CommitterName is the committer's name.
	CommitterName string
	// CommitterEmail is the committer's e-mail address.
	CommitterEmail string
	// Message is the raw commit message (subject, body and trailers).
	Message string
}

// Head returns the commit branch points at in repo, and false when the
// branch does not exist. It fails the test when repo cannot be read.
func (s *Server) Head(repo, branch string) (string, bool) {
	s.tb.Helper()
	dir, err := s.existingRepo(repo)
	if err != nil {
		s.tb.Fatalf("gitserver: %v", err)
	}
	out, err := s.git(dir, nil, "for-each-ref", "--format=%(objectname)", "refs/heads/"+branch)
	if err != nil {
		s.tb.Fatalf("gitserver: read branch %q of %q: %v", branch, repo, err)
	}
	hash := strings.TrimSpace(string(out))
	return hash, hash != ""
}

// Log lists the commits reachable from branch in repo, newest first (git
// log order). It fails the test when the branch does not exist.
func (s *Server) Log(repo, branch string) []Commit {
	s.tb.Helper()
	commits, err := s.log(repo, branch)
	if err != nil {
		s.tb.Fatalf("gitserver: log %q of %q: %v", branch, repo, err)
	}
	return commits
}

func (s *Server) log(repo, branch string) ([]Commit, error) {
	dir, err := s.existingRepo(repo)
	if err != nil {
		return nil, err
	}
	// Fields are separated by US (0x1f) and records by RS (0x1e), which do
	// not occur in names, e-mails or sane messages.
	out, err := s.git(dir, nil, "log", "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%B%x1e",
		"refs/heads/"+branch, "--")
	if err != nil {
		return nil, err
	}
	var commits []Commit
	for _, rec := range strings.Split(string(out), "\x1e") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.SplitN(rec, "\x1f", 7)
		if len(f) != 7 {
			return nil, fmt.Errorf("unexpected log record %q", rec)
		}
		commits = append(commits, Commit{
			Hash:           f[0],
			Parents:        strings.Fields(f[1]),
			AuthorName:     f[2],
			AuthorEmail:    f[3],
			CommitterName:  f[4],
			CommitterEmail: f[5],
			Message:        f[6],
		})
	}
	return commits, nil
}

// ReadFile returns the content of file p (slash separated, relative to the
// repository root) at the tip of branch. A missing branch or file gives an
// error that matches fs.ErrNotExist.
func (s *Server) ReadFile(repo, branch, p string) ([]byte, error) {
	return s.ReadFileAt(repo, "refs/heads/"+branch, p)
}

// ListFiles lists every file path at the tip of branch, sorted. It fails
// the test when the branch does not exist.
func (s *Server) ListFiles(repo, branch string) []string {
	s.tb.Helper()
	dir, err := s.existingRepo(repo)
	if err != nil {
		s.tb.Fatalf("gitserver: %v", err)
	}
	out, err := s.git(dir, nil, "ls-tree", "-r", "-z", "--name-only", "refs/heads/"+branch)
	if err != nil {
		s.tb.Fatalf("gitserver: list files of %q in %q: %v", branch, repo, err)
	}
	var files []string
	for _, name := range strings.Split(string(out), "\x00") {
		if name != "" {
			files = append(files, name)
		}
	}
	sort.Strings(files)
	return files
}

// AllBlobs returns every blob in the object database of repo, reachable or
// not, keyed by object id: the whole history as stored, for checks such as
// "no secret value was ever written". It fails the test on error.
func (s *Server) AllBlobs(repo string) map[string][]byte {
	s.tb.Helper()
	blobs, err := s.allBlobs(repo)
	if err != nil {
		s.tb.Fatalf("gitserver: read blobs of %q: %v", repo, err)
	}
	return blobs
}

func (s *Server) allBlobs(repo string) (map[string][]byte, error) {
	dir, err := s.existingRepo(repo)
	if err != nil {
		return nil, err
	}
	list, err := s.git(dir, nil, "cat-file", "--batch-all-objects", "--unordered",
		"--batch-check=%(objecttype) %(objectname)")
	if err != nil {
		return nil, err
	}
	var ids strings.Builder
	for _, line := range strings.Split(string(list), "\n") {
		if typ, id, ok := strings.Cut(line, " "); ok && typ == "blob" {
			ids.WriteString(id + "\n")
		}
	}
	blobs := map[string][]byte{}
	if ids.Len() == 0 {
		return blobs, nil
	}
	out, err := s.git(dir, strings.NewReader(ids.String()), "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	// --batch output: "<id> <type> <size>\n<content>\n" per object.
	r := bufio.NewReader(bytes.NewReader(out))
	for {
		header, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) && header == "" {
			return blobs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse cat-file output: %w", err)
		}
		f := strings.Fields(header)
		if len(f) != 3 {
			return nil, fmt.Errorf("unexpected cat-file header %q", header)
		}
		size, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("unexpected cat-file size in %q: %w", header, err)
		}
		content := make([]byte, size+1) // content plus trailing newline
		if _, err := io.ReadFull(r, content); err != nil {
			return nil, fmt.Errorf("read blob %s: %w", f[0], err)
		}
		blobs[f[0]] = content[:size]
	}
}

func (s *Server) existingRepo(repo string) (string, error) {
	dir := s.RepoPath(repo)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return "", fmt.Errorf("repository %q: %w", repo, err)
	}
	return dir, nil
}

// ReadFileAt returns the content of file p at any revision (a commit hash,
// a tag); a missing revision or file gives an error that matches
// fs.ErrNotExist.
func (s *Server) ReadFileAt(repo, rev, p string) ([]byte, error) {
	dir, err := s.existingRepo(repo)
	if err != nil {
		return nil, err
	}
	spec := rev + ":" + strings.TrimPrefix(p, "/")
	if _, err := s.git(dir, nil, "cat-file", "-e", spec); err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", spec, repo, fs.ErrNotExist)
	}
	out, err := s.git(dir, nil, "cat-file", "blob", spec)
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", spec, repo, err)
	}
	return out, nil
}

// ChangedFiles lists the paths a commit changed relative to its first
// parent (all its files for a root commit).
func (s *Server) ChangedFiles(repo, rev string) ([]string, error) {
	dir, err := s.existingRepo(repo)
	if err != nil {
		return nil, err
	}
	out, err := s.git(dir, nil, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", rev)
	if err != nil {
		return nil, fmt.Errorf("diff-tree %s in %s: %w", rev, repo, err)
	}
	return strings.Fields(string(out)), nil
}
