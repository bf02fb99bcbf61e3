package admission

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// discardRecorder keeps nothing, so the benchmark measures the handler.
type discardRecorder struct{}

func (discardRecorder) AddPending(change.Pending) {}
func (discardRecorder) AddTaint(change.Taint)     {}
func (discardRecorder) ClaimQueued(change.Taint)  {}
func (discardRecorder) ClaimDone(change.Taint)    {}

// benchHandler serves the review repeatedly; drained starts a consumer
// that empties the queue as the workers would (without their work, which
// is off the API server's path).
func benchHandler(b *testing.B, queueSize int, drained bool) {
	body, err := os.ReadFile("testdata/deployment-update-review.json")
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(Options{Index: testIndex(), Recorder: discardRecorder{}, QueueSize: queueSize})
	if err != nil {
		b.Fatal(err)
	}
	if !drained {
		// Fill the queue: every request is then a drop.
		for len(h.queue) < cap(h.queue) {
			h.queue <- &request{}
		}
	} else {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-ctx.Done():
					return
				case r := <-h.queue:
					queueDepth.Dec()
					h.finish(r)
				}
			}
		}()
		b.Cleanup(func() { cancel(); <-done })
	}
	rd := bytes.NewReader(body)
	req, err := http.NewRequest(http.MethodPost, Path, rd)
	if err != nil {
		b.Fatal(err)
	}
	w := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		h.ServeHTTP(w, req)
	}
}

func BenchmarkHandler_deploymentUpdate(b *testing.B) { benchHandler(b, DefaultQueueSize, true) }

func BenchmarkHandler_queueFull(b *testing.B) { benchHandler(b, 16, false) }

// BenchmarkWorker_deploymentUpdate is the workers' part of a review, off
// the API server's path: decoding object and oldObject, the rule match and
// the fingerprint.
func BenchmarkWorker_deploymentUpdate(b *testing.B) {
	body, err := os.ReadFile("testdata/deployment-update-review.json")
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(Options{Index: testIndex(), Recorder: discardRecorder{}, QueueSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	h.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	queued := <-h.queue
	b.Cleanup(func() { h.finish(queued) })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.process(queued); err != nil {
			b.Fatal(err)
		}
	}
}
