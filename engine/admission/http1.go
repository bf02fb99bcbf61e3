package admission

import "crypto/tls"

// HTTP1Only is a TLS option for the webhook server (controller-runtime's
// webhook.Options.TLSOpts) that offers only HTTP/1.1 in ALPN, so the API
// server talks HTTP/1.1 to the webhook.
//
// Why: with HTTP/2 every frame of every review on a connection passes
// through that connection's one serve goroutine (headers and body in,
// answer out, stream close), and the handler waits for the body to be
// handed over; when the process is short of CPU each of these hand-offs
// waits for a CPU. With HTTP/1.1 the connection's goroutine reads the
// body, runs the handler and writes the answer itself. In a CPU-starved
// server on the 2-core benchmark machine (docs/benchmarks.md, "Keeps
// up") the handler's p99 fell from 21–59 ms to 2.4–3.2 ms and the
// answer's p99 by about half. The API server keeps idle connections
// to the webhook (25 per host), so there is no handshake per review. It
// also closes the webhook's port to HTTP/2 stream floods (rapid reset),
// which matters because any pod can reach it.
func HTTP1Only(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
