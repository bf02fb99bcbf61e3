package gitstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// Reasons of a RemoteError. They equal the GitTarget condition reasons of
// api/v1alpha1, so a controller can copy them into a condition as they are.
const (
	// ReasonInvalidSecret: the Secret lacks keys the URL's scheme needs, or
	// holds unusable values.
	ReasonInvalidSecret = v1alpha1.ReasonInvalidSecret
	// ReasonAuthenticationFailed: the remote refused the credentials.
	ReasonAuthenticationFailed = v1alpha1.ReasonAuthenticationFailed
	// ReasonRepositoryNotFound: no repository answers at the URL.
	ReasonRepositoryNotFound = v1alpha1.ReasonRepositoryNotFound
	// ReasonBranchNotFound: the repository lacks the branch and it may not
	// be created.
	ReasonBranchNotFound = v1alpha1.ReasonBranchNotFound
	// ReasonRemoteUnreachable: the remote could not be reached or not be
	// trusted (network, TLS, SSH host key); worth retrying with backoff.
	ReasonRemoteUnreachable = v1alpha1.ReasonRemoteUnreachable
	// ReasonInvalidURL: the URL cannot be parsed or uses an unsupported
	// scheme.
	ReasonInvalidURL = v1alpha1.ReasonInvalidURL
)

// Identity of the root commit CheckRemote writes into an empty repository.
const (
	// InitCommitterName is the author and committer name of that commit.
	InitCommitterName = "gitops-reverser"
	// InitCommitterEmail is its e-mail address.
	InitCommitterEmail = "gitops-reverser@cluster.local"
)

// RemoteError is a failure to use a remote, classified by Reason. Its
// message names the URL (without credentials) and the branch, and never
// contains a secret value.
type RemoteError struct {
	// Reason is one of the Reason* constants.
	Reason string
	// URL is the remote URL with any password removed.
	URL string
	// Branch is the branch concerned, or "".
	Branch string
	// Err is the underlying error.
	Err error

	// secrets are scrubbed from Err's text in Error.
	secrets []string
}

func newRemoteError(reason, rawURL, branch string, err error, secrets ...string) *RemoteError {
	if pw := urlPassword(rawURL); pw != "" {
		secrets = append(secrets, pw)
	}
	return &RemoteError{Reason: reason, URL: RedactURL(rawURL), Branch: branch, Err: err, secrets: secrets}
}

// Error is a human message for a condition or an event.
func (e *RemoteError) Error() string {
	where := e.URL
	if e.Branch != "" {
		where = fmt.Sprintf("branch %q of %s", e.Branch, e.URL)
	}
	var lead string
	switch e.Reason {
	case ReasonInvalidSecret:
		lead = "credentials for " + e.URL + " are unusable"
	case ReasonAuthenticationFailed:
		lead = e.URL + " refused the credentials"
	case ReasonRepositoryNotFound:
		lead = "no repository at " + e.URL
	case ReasonBranchNotFound:
		lead = where + " does not exist"
	case ReasonRemoteUnreachable:
		lead = "cannot reach " + where
	case ReasonInvalidURL:
		lead = "invalid remote URL " + e.URL
	default:
		lead = "remote " + where + " failed"
	}
	if e.Err == nil {
		return lead
	}
	return lead + ": " + scrubText(e.Err.Error(), e.secrets)
}

// Unwrap returns the underlying error.
func (e *RemoteError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the first RemoteError in err's chain, or
// "" when there is none.
func ReasonOf(err error) string {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func urlPassword(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

// RemoteSpec names the remote branch to check.
type RemoteSpec struct {
	// URL of the remote repository.
	URL string
	// Branch that recorded changes go to.
	Branch string
	// CreateBranch creates Branch when the remote lacks it.
	CreateBranch bool
	// Signer signs the root commit CreateBranch writes into an empty
	// repository; nil leaves it unsigned.
	Signer Signer
}

// RemoteState is what CheckRemote found.
type RemoteState struct {
	// Head is the commit id Branch points at (after creating it, if it
	// was created); "" when the check failed.
	Head string
	// BranchCreated is true when CheckRemote created Branch.
	BranchCreated bool
	// EmptyRepository is true when the repository had no refs at all.
	EmptyRepository bool
}

// CheckRemote lists the remote's refs (an ls-remote, nothing is cloned) and
// reports where spec.Branch points. When the branch is missing and
// spec.CreateBranch is set, it creates the branch by a push that is never
// forced: at the commit of the default branch (the remote HEAD, else main
// or master), or, in a repository without branches, at a new root commit
// with an empty tree committed by InitCommitterName. If another client
// creates the branch at the same time, its commit is reported instead.
//
// Errors are *RemoteError (see ReasonOf); a BranchNotFound error still
// returns the EmptyRepository flag in the state.
func CheckRemote(ctx context.Context, spec RemoteSpec, auth transport.AuthMethod) (RemoteState, error) {
	ctx, cancel := withTimeout(ctx, 0)
	defer cancel()
	c, err := newRemoteCheck(spec, auth)
	if err != nil {
		return RemoteState{}, err
	}
	refs, empty, err := c.list(ctx)
	if err != nil {
		return RemoteState{}, err
	}
	state := RemoteState{EmptyRepository: empty}
	if head, ok := refs[c.branchRef]; ok {
		state.Head = head.String()
		return state, nil
	}
	if !spec.CreateBranch {
		return state, c.fail(ReasonBranchNotFound, nil)
	}
	head, created, err := c.createBranch(ctx, refs)
	if err != nil {
		return state, err
	}
	state.Head, state.BranchCreated = head.String(), created
	return state, nil
}

// remoteCheck carries one CheckRemote call.
type remoteCheck struct {
	spec      RemoteSpec
	auth      transport.AuthMethod
	branchRef plumbing.ReferenceName
	secrets   []string
}

func newRemoteCheck(spec RemoteSpec, auth transport.AuthMethod) (*remoteCheck, error) {
	c := &remoteCheck{spec: spec, auth: auth, branchRef: plumbing.NewBranchReferenceName(spec.Branch),
		secrets: authSecrets(auth)}
	if _, err := parseEndpoint(spec.URL); err != nil {
		return nil, c.fail(ReasonInvalidURL, err)
	}
	if spec.Branch == "" {
		return nil, c.fail(ReasonBranchNotFound, errors.New("no branch given"))
	}
	if err := c.branchRef.Validate(); err != nil {
		return nil, c.fail(ReasonBranchNotFound, fmt.Errorf("invalid branch name: %w", err))
	}
	return c, nil
}

func (c *remoteCheck) fail(reason string, err error) *RemoteError {
	return newRemoteError(reason, c.spec.URL, c.spec.Branch, err, c.secrets...)
}

func (c *remoteCheck) remote(s *memory.Storage) *git.Remote {
	return git.NewRemote(s, &config.RemoteConfig{Name: "origin", URLs: []string{c.spec.URL}})
}

// list returns the remote's refs resolved to commit ids (HEAD included
// when the server advertises it), and whether the repository is empty.
func (c *remoteCheck) list(ctx context.Context) (map[plumbing.ReferenceName]plumbing.Hash, bool, error) {
	refs, err := c.remote(memory.NewStorage()).ListContext(ctx, &git.ListOptions{Auth: c.auth})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return map[plumbing.ReferenceName]plumbing.Hash{}, true, nil
	}
	if err != nil {
		return nil, false, c.fail(classify(err), err)
	}
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	out := make(map[plumbing.ReferenceName]plumbing.Hash, len(refs))
	for name, r := range byName {
		// Symbolic refs (HEAD) are followed a few steps; a dangling one is
		// left out, as the server would not advertise it either.
		for i := 0; i < 5 && r != nil && r.Type() == plumbing.SymbolicReference; i++ {
			r = byName[r.Target()]
		}
		if r != nil && r.Type() == plumbing.HashReference {
			out[name] = r.Hash()
		}
	}
	return out, len(out) == 0, nil
}

// createBranch pushes the missing branch and returns its commit, and
// whether this call created it (false when a concurrent client did).
func (c *remoteCheck) createBranch(ctx context.Context, refs map[plumbing.ReferenceName]plumbing.Hash) (plumbing.Hash, bool, error) {
	storage := memory.NewStorage()
	var objects []plumbing.Hash
	base, ok := defaultBranchCommit(refs)
	if !ok {
		tree, root, err := writeRootCommit(storage, c.spec.Branch, c.spec.Signer)
		if err != nil {
			return plumbing.ZeroHash, false, c.fail(ReasonRemoteUnreachable, err)
		}
		base, objects = root, []plumbing.Hash{tree, root}
	}
	err := c.createRef(ctx, storage, base, objects)
	if err == nil {
		return base, true, nil
	}
	// A client that created the branch meanwhile makes our create fail;
	// the branch exists, which is all the caller asked for.
	if refs, _, listErr := c.list(ctx); listErr == nil {
		if head, exists := refs[c.branchRef]; exists {
			return head, false, nil
		}
	}
	return plumbing.ZeroHash, false, c.fail(classify(err), fmt.Errorf("create branch: %w", err))
}

// createRef runs one receive-pack exchange that creates the branch at base
// (old id zero, so the server refuses it if the branch appeared meanwhile:
// never a forced update), sending objects from storage. With no objects
// (base already on the remote) the pack is empty, as git sends it; go-git's
// Push cannot do that without having base locally.
func (c *remoteCheck) createRef(ctx context.Context, storage *memory.Storage, base plumbing.Hash, objects []plumbing.Hash) (err error) {
	ep, err := transport.NewEndpoint(c.spec.URL)
	if err != nil {
		return fmt.Errorf("parse URL: %w", err)
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	sess, err := cl.NewReceivePackSession(ep, c.auth)
	if err != nil {
		return fmt.Errorf("open receive-pack session: %w", err)
	}
	defer func() {
		if cerr := sess.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close receive-pack session: %w", cerr)
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return fmt.Errorf("read advertised references: %w", err)
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	req.Commands = []*packp.Command{{Name: c.branchRef, Old: plumbing.ZeroHash, New: base}}
	pr, pw := io.Pipe()
	req.Packfile = pr
	encoded := make(chan error, 1)
	go func() {
		enc := packfile.NewEncoder(pw, storage, !ar.Capabilities.Supports(capability.OFSDelta))
		_, eerr := enc.Encode(objects, 0)
		encoded <- eerr
		_ = pw.CloseWithError(eerr)
	}()
	status, err := sess.ReceivePack(ctx, req)
	// Unblocks the encoder if the session stopped reading early.
	_ = pr.CloseWithError(errors.New("receive-pack finished"))
	eerr := <-encoded
	if status != nil {
		if serr := status.Error(); serr != nil {
			return fmt.Errorf("remote refused the new branch: %w", serr)
		}
	}
	if err != nil {
		return fmt.Errorf("send pack: %w", err)
	}
	if eerr != nil {
		return fmt.Errorf("encode pack: %w", eerr)
	}
	return nil
}

// defaultBranchCommit is the commit a new branch starts from: the remote
// HEAD, else main, else master.
func defaultBranchCommit(refs map[plumbing.ReferenceName]plumbing.Hash) (plumbing.Hash, bool) {
	for _, name := range []plumbing.ReferenceName{plumbing.HEAD, plumbing.Main, plumbing.Master} {
		if h, ok := refs[name]; ok {
			return h, true
		}
	}
	return plumbing.ZeroHash, false
}

// writeRootCommit stores an empty tree and a parentless commit of it,
// signed by signer unless it is nil, and returns both ids.
func writeRootCommit(s *memory.Storage, branch string, signer Signer) (tree, commit plumbing.Hash, err error) {
	treeObj := s.NewEncodedObject()
	if err := (&object.Tree{}).Encode(treeObj); err != nil {
		return tree, commit, fmt.Errorf("encode empty tree: %w", err)
	}
	if tree, err = s.SetEncodedObject(treeObj); err != nil {
		return tree, commit, fmt.Errorf("store empty tree: %w", err)
	}
	sig := object.Signature{Name: InitCommitterName, Email: InitCommitterEmail, When: time.Now()}
	c := &object.Commit{
		Author:    sig,
		Committer: sig,
		Message:   fmt.Sprintf("Initialize branch %s\n", branch),
		TreeHash:  tree,
	}
	if signer != nil {
		if err := signCommit(signer, c); err != nil {
			return tree, commit, err
		}
	}
	commitObj := s.NewEncodedObject()
	if err := c.Encode(commitObj); err != nil {
		return tree, commit, fmt.Errorf("encode root commit: %w", err)
	}
	if commit, err = s.SetEncodedObject(commitObj); err != nil {
		return tree, commit, fmt.Errorf("store root commit: %w", err)
	}
	return tree, commit, nil
}

// classify maps a go-git transport error to a Reason. Anything not
// recognised (refused connections, timeouts, TLS and host key failures,
// protocol errors) is RemoteUnreachable: worth a retry rather than a verdict
// on the user's spec.
func classify(err error) string {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		// x/crypto/ssh has no typed client-side authentication error.
		strings.Contains(err.Error(), "ssh: unable to authenticate"):
		return ReasonAuthenticationFailed
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return ReasonRepositoryNotFound
	case errors.Is(err, transport.ErrInvalidAuthMethod):
		// e.g. SSH credentials for an HTTPS URL.
		return ReasonInvalidSecret
	default:
		return ReasonRemoteUnreachable
	}
}
