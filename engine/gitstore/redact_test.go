package gitstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

func TestRedactURL_cases(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://alice:s3cr3t@example.com/r.git", "https://***@example.com/r.git"},
		{"https://ghp_T0kEn1234@example.com/r.git", "https://***@example.com/r.git"},
		{"https://:s3cr3t@example.com/r.git", "https://***@example.com/r.git"},
		{"https://oauth2:glpat-x%2Fy@gitlab.example.com:8443/g/r.git", "https://***@gitlab.example.com:8443/g/r.git"},
		{"http://alice:s3cr3t@127.0.0.1:8080/r.git", "http://***@127.0.0.1:8080/r.git"},
		{"ssh://git@example.com:2222/team/r.git", "ssh://***@example.com:2222/team/r.git"},
		{"ssh://alice:pw@example.com/team/r.git", "ssh://***@example.com/team/r.git"},
		{"git@github.com:team/r.git", "***@github.com:team/r.git"},
		{"alice@example.com:/srv/git/r.git", "***@example.com:/srv/git/r.git"},
		// url.Parse rejects these; the text is redacted all the same.
		{"https://alice:s3cr3t@exa mple.com/%zz", "https://***@exa mple.com/%zz"},
		{"https://alice:pa/ss@example.com/r.git", "https://***@example.com/r.git"},
		{"https://alice:p@ss@example.com/r.git", "https://***@example.com/r.git"},
		// No user info: unchanged.
		{"https://example.com/r.git", "https://example.com/r.git"},
		{"https://example.com/r.git?ref=a@b", "https://example.com/r.git?ref=a@b"},
		{"file:///srv/git/r.git", "file:///srv/git/r.git"},
		{"/srv/git/r.git", "/srv/git/r.git"},
		{"example.com:team/r.git", "example.com:team/r.git"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Fatalf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactText_cases(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "net/http url.Error keeps the user name (a token)",
			in:   `unexpected client error: Get "https://ghp_T0kEn1234@example.com/r.git/info/refs?service=git-upload-pack": dial tcp: lookup example.com: no such host`,
			want: `unexpected client error: Get "https://***@example.com/r.git/info/refs?service=git-upload-pack": dial tcp: lookup example.com: no such host`,
		},
		{
			name: "net/http masks the password, the user stays",
			in:   `Get "https://alice:***@example.com/r.git/info/refs": EOF`,
			want: `Get "https://***@example.com/r.git/info/refs": EOF`,
		},
		{
			name: "url.Error of a parse, unquoted, twice",
			in:   "parse https://a:b@x/ y: invalid; also ssh://git@host:22/r.git",
			want: "parse https://***@x/ y: invalid; also ssh://***@host:22/r.git",
		},
		{
			name: "no URL",
			in:   "authentication required: alice@example.com",
			want: "authentication required: alice@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactText(tt.in); got != tt.want {
				t.Fatalf("RedactText(%q)\n= %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestScrub_cases(t *testing.T) {
	base := errors.New(`Get "https://ghp_T0kEn1234@example.com/r.git/info/refs": secret pw0rd-X rejected`)
	tests := []struct {
		name   string
		auth   transport.AuthMethod
		absent []string
	}{
		{"basic auth", &githttp.BasicAuth{Username: "alice", Password: "pw0rd-X"}, []string{"ghp_T0kEn1234", "pw0rd-X"}},
		{"token as user name", &githttp.BasicAuth{Username: "pw0rd-X"}, []string{"ghp_T0kEn1234", "pw0rd-X"}},
		{"token auth", &githttp.TokenAuth{Token: "pw0rd-X"}, []string{"ghp_T0kEn1234", "pw0rd-X"}},
		{"no auth", nil, []string{"ghp_T0kEn1234"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("fetch main: %w", scrub(base, authSecrets(tt.auth)...))
			for _, s := range tt.absent {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds %q", err, s)
				}
			}
			if !errors.Is(err, base) {
				t.Error("scrubbed error does not unwrap to the original")
			}
		})
	}
	if scrub(nil) != nil {
		t.Error("scrub(nil) is not nil")
	}
}
