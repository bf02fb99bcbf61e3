package gitstore

import (
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// redactedUserinfo replaces the user info of a URL.
const redactedUserinfo = "***"

// RedactURL returns rawURL with its user info, whatever its form, replaced
// by "***", for logs, conditions and events: "user:password@", "token@"
// (a token as the user name, which no parser can tell from a name),
// "ssh://user@" and scp-like "user@host:path". It works on the text, so a
// URL that url.Parse rejects is redacted too: everything before the last
// "@" of the part after "scheme://" (up to a query or fragment) is user
// info, so a password holding a raw "/" or "@" is covered.
func RedactURL(rawURL string) string {
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		return rawURL[:len(rawURL)-len(rest)] + redactAuthority(rest)
	}
	// scp-like user@host:path: an "@" before the first ":" and "/".
	if at := strings.IndexByte(rawURL, '@'); at > 0 {
		if stop := strings.IndexAny(rawURL, ":/"); stop < 0 || at < stop {
			return redactedUserinfo + rawURL[at:]
		}
	}
	return rawURL
}

// redactAuthority redacts the user info of rest, the part of a URL after
// "scheme://".
func redactAuthority(rest string) string {
	end := len(rest)
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		end = i
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return rest
	}
	return redactedUserinfo + rest[at:]
}

// urlInText finds URLs with a scheme in free text, e.g. the quoted URL of
// a *url.Error inside a go-git error, up to a space or a quote.
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// RedactText returns s with the user info of every "scheme://" URL in it
// redacted as RedactURL does. Errors of go-git and net/http quote the URL
// they failed on, and net/http masks a password but keeps a user name,
// which may be a token.
func RedactText(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, RedactURL)
}

// authSecrets are the values of auth that must never appear in a message:
// a password or token, and the user name when it comes without a password
// (then it is a token used as the user name).
func authSecrets(auth transport.AuthMethod) []string {
	var out []string
	switch a := auth.(type) {
	case *githttp.BasicAuth:
		if a.Password != "" {
			out = append(out, a.Password)
		} else if a.Username != "" {
			out = append(out, a.Username)
		}
	case *githttp.TokenAuth:
		out = append(out, a.Token)
	}
	return out
}

// scrubbedError is an error whose text has credentials removed. It unwraps
// to the original error, so errors.Is keeps working; only Error changes.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

func (e *scrubbedError) Unwrap() error { return e.err }

// scrub returns err with URL user info and the values of secrets removed
// from its text; nil stays nil.
func scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: scrubText(err.Error(), secrets), err: err}
}

// scrubText is RedactText plus the removal of secrets.
func scrubText(msg string, secrets []string) string {
	msg = RedactText(msg)
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redactedUserinfo)
		}
	}
	return msg
}
