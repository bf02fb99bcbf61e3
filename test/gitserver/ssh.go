package gitserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"
)

// GenerateClientKey makes an ed25519 key pair for an SSH client. The private
// key is PEM encoded (OpenSSH format), encrypted with passphrase when it is
// not empty, and is accepted by go-git's ssh.NewPublicKeys.
func GenerateClientKey(passphrase string) (privatePEM []byte, public ssh.PublicKey, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "gitserver-client")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "gitserver-client", []byte(passphrase))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("marshal private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("convert public key: %w", err)
	}
	return pem.EncodeToMemory(block), sshPub, nil
}

func (s *Server) startSSH() error {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return fmt.Errorf("host key signer: %w", err)
	}
	s.hostKey = hostSigner.PublicKey()

	clientPEM, clientPub, err := GenerateClientKey("")
	if err != nil {
		return err
	}
	s.clientPEM = clientPEM
	s.AuthorizeKey(clientPub)

	s.sshConfig = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			ok := s.authorized[string(key.Marshal())]
			s.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("public key of %q is not authorized", meta.User())
			}
			return &ssh.Permissions{}, nil
		},
	}
	s.sshConfig.AddHostKey(hostSigner)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for ssh: %w", err)
	}
	s.sshListener = l
	s.wg.Add(1)
	go s.acceptSSH()
	return nil
}

func (s *Server) acceptSSH() {
	defer s.wg.Done()
	for {
		conn, err := s.sshListener.Accept()
		if err != nil {
			return
		}
		if !s.track(conn) {
			_ = conn.Close()
			return
		}
		s.wg.Add(1)
		go s.serveSSHConn(conn)
	}
}

// track registers conn so that Close can drop it; false once closed.
func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, conn)
}

func (s *Server) serveSSHConn(conn net.Conn) {
	defer s.wg.Done()
	defer s.untrack(conn)
	defer func() { _ = conn.Close() }()

	sconn, chans, reqs, err := ssh.NewServerConn(conn, s.sshConfig)
	if err != nil {
		return // failed handshake or authentication
	}
	defer func() { _ = sconn.Close() }()
	go ssh.DiscardRequests(reqs)

	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only session channels are served")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		s.wg.Add(1)
		go s.serveSession(ch, chReqs)
	}
}

// serveSession runs the first exec request of a session and reports its
// exit status, as sshd does for a git client.
func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer s.wg.Done()
	defer func() { _ = ch.Close() }()

	var gitProtocol string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if err := ssh.Unmarshal(req.Payload, &kv); err == nil && kv.Name == "GIT_PROTOCOL" {
				gitProtocol = kv.Value
				_ = req.Reply(true, nil)
				continue
			}
			_ = req.Reply(false, nil)
		case "exec":
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			status := s.runGitService(ch, payload.Command, gitProtocol)
			_ = ch.CloseWrite()
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			return
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// runGitService runs git upload-pack or receive-pack for command, with
// the channel as the process's stdin, stdout and stderr, and returns the
// exit status.
func (s *Server) runGitService(ch ssh.Channel, command, gitProtocol string) uint32 {
	service, repo, err := parseGitCommand(command)
	if err != nil {
		_, _ = fmt.Fprintf(ch.Stderr(), "fatal: %v\n", err)
		return 128
	}
	dir := s.RepoPath(repo)
	cmd := exec.Command(s.gitPath, service, dir)
	cmd.Env = s.baseEnv()
	if gitProtocol != "" {
		cmd.Env = append(cmd.Env, "GIT_PROTOCOL="+gitProtocol)
	}
	cmd.Dir = s.home
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		_, _ = fmt.Fprintf(ch.Stderr(), "fatal: %v\n", err)
		return 128
	}
	if err := cmd.Start(); err != nil {
		_, _ = fmt.Fprintf(ch.Stderr(), "fatal: %v\n", err)
		return 128
	}
	// The copy ends when the client closes its side or the channel is
	// closed after the process exits; Wait must not wait for it, since a
	// client may keep its stdin open.
	go func() {
		_, _ = io.Copy(stdin, ch)
		_ = stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return uint32(exitErr.ExitCode())
		}
		return 128
	}
	return 0
}

// parseGitCommand splits an exec request such as
// `git-upload-pack '/team/app.git'` into the git subcommand and the
// repository path, undoing shell quoting.
func parseGitCommand(command string) (service, repo string, err error) {
	words, err := shellWords(command)
	if err != nil {
		return "", "", err
	}
	if len(words) == 3 && words[0] == "git" {
		words = []string{"git-" + words[1], words[2]}
	}
	if len(words) != 2 {
		return "", "", fmt.Errorf("unsupported command %q", command)
	}
	switch words[0] {
	case "git-upload-pack", "git-receive-pack":
	default:
		return "", "", fmt.Errorf("unsupported command %q", words[0])
	}
	repo = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(words[1], "~/")), "/")
	if repo == "" {
		return "", "", fmt.Errorf("'%s' does not appear to be a git repository", words[1])
	}
	return strings.TrimPrefix(words[0], "git-"), repo, nil
}

// shellWords splits s like a POSIX shell would for plain words, single
// quotes, double quotes and backslash escapes; nothing is expanded.
func shellWords(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote = r
			inWord = true
		case r == '\\':
			escaped = true
			inWord = true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("unterminated quoting in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
