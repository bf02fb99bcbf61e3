// Package gitserver runs a real Git server inside a test process, so that
// code which talks to remotes is exercised against the real Git wire
// protocol rather than a fake.
//
// A Server holds bare repositories in a temporary directory and serves them
// two ways at once:
//
//   - HTTP(S)-style smart HTTP: `git http-backend` behind an
//     httptest.Server through net/http/cgi, protected by HTTP basic auth
//     (a user/password pair, and optionally a token accepted as the
//     password with any username);
//   - SSH: a server built on golang.org/x/crypto/ssh on 127.0.0.1 with a
//     random port and an ed25519 host key, public-key authentication
//     against authorized keys, running `git upload-pack` and
//     `git receive-pack` for exec requests.
//
// Every repository it creates refuses non-fast-forward updates and branch
// deletions (receive.denyNonFastForwards, receive.denyDeletes), so a client
// that would force-push fails loudly in tests.
//
// Inspection helpers (Log, ReadFile, ListFiles, AllBlobs, Head) read the
// bare repository with the git CLI, independently of go-git, and
// HumanCommit simulates a person pushing to the same branch.
//
// All git CLI calls run with GIT_CONFIG_NOSYSTEM=1 and HOME pointing at a
// temporary directory, so the machine's Git configuration never leaks in.
// Ports and directories are never fixed, so packages may run in parallel.
package gitserver
