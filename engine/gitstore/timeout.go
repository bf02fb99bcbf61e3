package gitstore

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// DefaultTimeout bounds one network exchange with a remote (ls-remote,
// fetch, push) when neither the caller's context nor Config.Timeout sets
// one. A remote that accepts the connection and never answers is cut off
// after it, so it delays only its own target.
const DefaultTimeout = 30 * time.Second

// defaultTimeout is the deadline of calls that set none; SetTimeouts
// changes it at start.
var defaultTimeout = DefaultTimeout

// withTimeout returns ctx bounded by d (the default timeout when d is
// zero), unless ctx already ends earlier.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = defaultTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// SetTimeouts sets the deadline of every network call that has none
// (CheckRemote, and a Writer without Config.Timeout) to d (DefaultTimeout
// when zero), and replaces go-git's HTTP(S) transport with one whose
// connect, TLS handshake and wait for response headers are each bounded by
// d. The context deadline already bounds the whole exchange; the transport
// bounds the stages a context cannot see (a dial in the kernel, a proxy
// that holds the connection). Call it once at start, before any Git network
// call. The SSH transport bounds its dial with its own timeout (see
// AuthFromSecret).
func SetTimeouts(d time.Duration) {
	if d <= 0 {
		d = DefaultTimeout
	}
	defaultTimeout = d
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = d
	tr.ResponseHeaderTimeout = d
	tr.IdleConnTimeout = 90 * time.Second
	c := githttp.NewClient(&http.Client{Transport: tr})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}
