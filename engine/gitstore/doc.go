// Package gitstore is the last stage of the pipeline: it receives closed
// author sessions as file changes for one repository and branch, and hands
// them on to the remote as pushed commits (see Writer).
//
// This file's neighbours auth.go and remote.go give the stage its access to
// remotes, for the writer and for the GitTarget controller alike:
//
//   - AuthFromSecret turns the data of a GitTarget's credentials Secret and
//     its URL into a go-git transport.AuthMethod: HTTPS basic auth
//     (username/password, or a token), or SSH public-key auth that always
//     verifies the server's host key against the Secret's known_hosts,
//     parsed in memory.
//   - CheckRemote lists the remote's refs without cloning, reports the
//     branch head, and optionally creates a missing branch by a plain
//     (never forced) push.
//   - SignerFromSecret (signing.go) parses a signing Secret's OpenPGP or
//     SSH private key; a Writer (Config.Signer) and CheckRemote
//     (RemoteSpec.Signer) sign every commit they create with it, so that
//     `git verify-commit` shows the operator made it.
//
// Every failure is a *RemoteError whose Reason equals a GitTarget
// condition reason of api/v1alpha1 (AuthenticationFailed,
// RepositoryNotFound, BranchNotFound, RemoteUnreachable, InvalidURL,
// InvalidSecret) and whose message names the URL, without credentials, and
// the branch. No secret value ever appears in an error.
package gitstore
