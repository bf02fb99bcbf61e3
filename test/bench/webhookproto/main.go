// Command webhookproto compares the webhook's answer time over HTTP/2 and
// HTTP/1.1 when the serving process is short of CPU, without a control
// plane: the server process runs the real admission handler (and its
// workers) behind TLS, as controller-runtime's webhook server does, next
// to busy goroutines that stand for the rest of the manager; the client
// process sends reviews from concurrent writers, as the API server does,
// and times a probe every 10 ms. See docs/benchmarks.md, "Keeps up".
//
//	go build -o /tmp/webhookproto ./test/bench/webhookproto
//	/tmp/webhookproto -mode server -proto h2 & /tmp/webhookproto -mode client -proto h2; kill %1
//	/tmp/webhookproto -mode server -proto http/1.1 & /tmp/webhookproto -mode client -proto http/1.1; kill %1
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/admission"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:18443", "address of the server")
	proto := flag.String("proto", "h2", "h2 or http/1.1")
	busy := flag.Int("busy", 2, "server: goroutines that allocate and encode 3 ms out of every 6, standing for the rest of the manager")
	writers := flag.Int("writers", 20, "client: concurrent writers")
	pause := flag.Duration("pause", 20*time.Millisecond, "client: each writer's pause between reviews (the API server's own work)")
	d := flag.Duration("d", 20*time.Second, "client: how long to send")
	flag.Parse()
	var err error
	if *mode == "server" {
		err = serve(*addr, *proto, *busy)
	} else {
		err = send("https://"+*addr, *proto, *writers, *pause, *d)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// discard is a recorder that keeps nothing.
type discard struct{}

func (discard) AddPending(change.Pending) {}
func (discard) AddTaint(change.Taint)     {}
func (discard) ClaimQueued(change.Taint)  {}
func (discard) ClaimDone(change.Taint)    {}

var sink []byte

// busyLoop allocates and encodes JSON 3 ms out of every 6.
func busyLoop() {
	for {
		t0 := time.Now()
		for time.Since(t0) < 3*time.Millisecond {
			m := map[string]interface{}{}
			for i := 0; i < 50; i++ {
				m[fmt.Sprint(i)] = []interface{}{"a", i, 1.5, map[string]string{"x": "y"}}
			}
			sink, _ = json.Marshal(m)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// timed records the handler's own answer times.
type timed struct {
	mu sync.Mutex
	ds []time.Duration
}

func (t *timed) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		t.mu.Lock()
		t.ds = append(t.ds, time.Since(t0))
		t.mu.Unlock()
	})
}

func serve(addr, proto string, busy int) error {
	h, err := admission.NewHandler(admission.Options{Index: rules.NewIndex(), Recorder: discard{}})
	if err != nil {
		return err
	}
	go func() { _ = h.Start(context.Background()) }()
	for i := 0; i < busy; i++ {
		go busyLoop()
	}
	var inner timed
	mux := http.NewServeMux()
	mux.Handle(admission.Path, inner.wrap(h))
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		inner.mu.Lock()
		ds := inner.ds
		inner.ds = nil
		inner.mu.Unlock()
		_, _ = fmt.Fprint(w, summary(ds))
	})
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	// As controller-runtime's webhook server: h2 offered, then the TLS options.
	cfg := &tls.Config{NextProtos: []string{"h2"}, Certificates: []tls.Certificate{cert}}
	if proto == "http/1.1" {
		admission.HTTP1Only(cfg)
	}
	l, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(l)
}

func selfSigned() (tls.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a key: %w", err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webhookproto"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signing: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
}

func summary(s []time.Duration) string {
	if len(s) == 0 {
		return "none"
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(f float64) time.Duration { return s[int(f*float64(len(s)-1))].Round(10 * time.Microsecond) }
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s", len(s), q(0.5), q(0.9), q(0.99), q(1))
}

// review is a ConfigMap UPDATE review of about 3 KB, as the API server
// writes one; dryRun marks the probe's.
func review(uid string, dryRun bool) []byte {
	obj := map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{"name": "c", "namespace": "ns", "uid": "u-1", "resourceVersion": "41"},
		"data":     map[string]string{"v": strings.Repeat("x", 1400)},
	}
	b, _ := json.Marshal(map[string]interface{}{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]interface{}{
			"uid": uid, "operation": "UPDATE", "name": "c", "namespace": "ns", "dryRun": dryRun,
			"resource": map[string]string{"group": "", "version": "v1", "resource": "configmaps"},
			"userInfo": map[string]interface{}{"username": "writer", "groups": []string{"system:authenticated"}},
			"object":   obj, "oldObject": obj,
		},
	})
	return b
}

func send(base, proto string, writers int, pause, d time.Duration) error {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a local self-signed experiment
		ForceAttemptHTTP2:   proto == "h2",
		MaxIdleConnsPerHost: 25, // client-go's, as the API server's webhook client
	}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	post := func(body []byte) (time.Duration, bool) {
		t0 := time.Now()
		resp, err := c.Post(base+admission.Path, "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return time.Since(t0), resp.StatusCode == http.StatusOK
	}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []time.Duration
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := review(fmt.Sprintf("w-%d", i), false)
			for time.Now().Before(stop) {
				if x, ok := post(body); ok {
					mu.Lock()
					all = append(all, x)
					mu.Unlock()
				}
				time.Sleep(pause)
			}
		}(i)
	}
	var probe []time.Duration
	body := review("probe", true)
	for time.Now().Before(stop) {
		if x, ok := post(body); ok {
			probe = append(probe, x)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	fmt.Printf("proto %s\nwriters: %s\nprobe:   %s\n", proto, summary(all), summary(probe))
	resp, err := c.Get(base + "/stats")
	if err != nil {
		return fmt.Errorf("reading the server's stats: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	fmt.Printf("handler: %s\n", b)
	return err
}
