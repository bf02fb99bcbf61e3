package controller

import (
	"context"
	"errors"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/gitstore"
)

// GitRemoteChecker checks remotes with go-git: credentials from the Secret,
// then an ls-remote (creating the branch when the target asks for it).
type GitRemoteChecker struct{}

// CheckRemote implements RemoteChecker.
func (GitRemoteChecker) CheckRemote(ctx context.Context, target *v1alpha1.GitTarget, secretData map[string][]byte, signer gitstore.Signer) (RemoteResult, error) {
	auth, err := gitstore.AuthFromSecret(target.Spec.URL, secretData)
	if err != nil {
		return RemoteResult{}, toCheckError(err)
	}
	st, err := gitstore.CheckRemote(ctx, gitstore.RemoteSpec{
		URL: target.Spec.URL, Branch: target.Spec.Branch, CreateBranch: target.Spec.CreateBranch, Signer: signer,
	}, auth)
	if err != nil {
		return RemoteResult{}, toCheckError(err)
	}
	return RemoteResult{Head: st.Head, BranchCreated: st.BranchCreated}, nil
}

func toCheckError(err error) error {
	reason := gitstore.ReasonOf(err)
	if reason == "" {
		reason = v1alpha1.ReasonRemoteUnreachable
	}
	var re *gitstore.RemoteError
	msg := gitstore.RedactText(err.Error())
	if errors.As(err, &re) {
		msg = re.Error()
	}
	return &CheckError{Reason: reason, Message: msg, Retry: reason == v1alpha1.ReasonRemoteUnreachable}
}
