package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// Path is where the API server posts admission reviews.
const Path = "/validate"

const (
	reviewAPIVersion = "admission.k8s.io/v1"
	reviewKind       = "AdmissionReview"
	// maxBodyBytes bounds a review the handler keeps. etcd stores at most
	// 1.5 MiB per object (--max-request-bytes); a review carries object
	// and oldObject as JSON, where base64 binaryData grows by 4/3: about
	// 2 MiB each, 4 MiB together, and the rest of the review is small. A
	// larger review (say, an object of control characters, which JSON
	// escapes sixfold) is not kept: a bounded scan reads its keys and
	// taints its write, which then becomes unknown, never someone else's.
	maxBodyBytes = 5 << 20
	// pooledBufferBytes: larger body buffers are not pooled, so the pool
	// does not pin memory outside the queue's byte bound.
	pooledBufferBytes = 256 << 10
	// DefaultQueueSize is the queue length when Options.QueueSize is 0.
	DefaultQueueSize = 4096
	// DefaultQueueBytes bounds the bodies being read and queued when
	// Options.QueueBytes is 0: with the workers' decoding it keeps the
	// webhook well inside the chart's 512 MiB memory limit.
	DefaultQueueBytes = 64 << 20
	// DefaultWorkers is the number of workers when Options.Workers is 0.
	DefaultWorkers = 2
)

// PendingRecorder receives the pending changes the workers record, and
// the taints of claims that could not be kept (dropped or failed): their
// writes must not be attributed to another claim. The confirm stage's store
// implements it. Neither method may block for long.
//
// Between ClaimQueued and ClaimDone a request for the key is in the queue:
// the recorder must not name the author of the key's write from other
// claims meanwhile (a forged claim would win the race against the real one
// queued behind a flood).
type PendingRecorder interface {
	AddPending(p change.Pending)
	AddTaint(t change.Taint)
	ClaimQueued(key change.Taint)
	ClaimDone(key change.Taint)
}

// Options configure a Handler.
type Options struct {
	// Index is the rule index asked whether a request is selected.
	Index *rules.Index
	// NamespaceLabels returns a namespace's labels for ClusterWatchRules
	// with a namespace selector; nil when no rule needs it.
	NamespaceLabels rules.NamespaceLabeler
	// Recorder receives the pending changes.
	Recorder PendingRecorder
	// QueueSize bounds the queue between the handler and the workers;
	// DefaultQueueSize when 0.
	QueueSize int
	// QueueBytes bounds the bytes of the bodies being read and queued;
	// DefaultQueueBytes when 0.
	QueueBytes int64
	// Workers is the number of goroutines that drain the queue;
	// DefaultWorkers when 0.
	Workers int
	// Log receives worker errors (keys only, never object contents).
	Log logr.Logger
}

// Handler is the capture webhook: an http.Handler for POST /validate that
// always allows and queues the request, and (Start) the workers that turn
// queued requests into pending changes.
type Handler struct {
	opts  Options
	queue chan *request
	now   func() time.Time
	// bytes are the body bytes held by requests being read or queued.
	bytes atomic.Int64
}

// NewHandler returns a Handler. It fails when Index or Recorder is missing.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Index == nil {
		return nil, errors.New("admission handler: Options.Index is required")
	}
	if opts.Recorder == nil {
		return nil, errors.New("admission handler: Options.Recorder is required")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	return &Handler{opts: opts, queue: make(chan *request, opts.QueueSize), now: time.Now}, nil
}

// review is the slice of an AdmissionReview the capture needs. Object and
// oldObject stay raw: the workers decode them, off the API server's path.
type review struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Request    *request `json:"request"`
}

type request struct {
	UID         string `json:"uid"`
	Resource    gvr    `json:"resource"`
	SubResource string `json:"subResource"`
	Name        string `json:"name"`
	Namespace   string `json:"namespace"`
	Operation   string `json:"operation"`
	UserInfo    struct {
		Username string              `json:"username"`
		UID      string              `json:"uid"`
		Groups   []string            `json:"groups"`
		Extra    map[string][]string `json:"extra"`
	} `json:"userInfo"`
	// Object and OldObject are sub-slices of body on decodeReview's fast
	// path: they are valid until the request is finished.
	Object    json.RawMessage `json:"object"`
	OldObject json.RawMessage `json:"oldObject"`
	DryRun    *bool           `json:"dryRun"`

	// objKeys and oldKeys are the objects' metadata keys when the fast
	// path read them (taintOf scans the raw objects otherwise).
	objKeys, oldKeys objectKeys
	// body holds the review's bytes until a worker is done with the
	// request; finish returns it to bodyPool.
	body *bytes.Buffer

	received time.Time
	// cost is the body bytes the request holds of Options.QueueBytes.
	cost int64
	// key is the write the request claims, announced to the recorder
	// while the request is queued.
	key change.Taint
}

type gvr struct {
	Group    string `json:"group"`
	Version  string `json:"version"`
	Resource string `json:"resource"`
}

// bodyPool recycles request bodies. A queued request keeps its body (its
// object and oldObject point into it) until finish.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBody returns a body to bodyPool unless it grew too large to pin.
func putBody(buf *bytes.Buffer) {
	if buf != nil && buf.Cap() <= pooledBufferBytes {
		buf.Reset()
		bodyPool.Put(buf)
	}
}

// reserve takes n bytes of the queue's byte bound, if they are free.
func (h *Handler) reserve(n int64) bool {
	if h.bytes.Add(n) > h.opts.QueueBytes {
		h.bytes.Add(-n)
		return false
	}
	return true
}

// release gives n bytes back.
func (h *Handler) release(n int64) { h.bytes.Add(-n) }

// ServeHTTP answers an AdmissionReview with allowed: true and queues the
// request. It never waits for the queue. A review it cannot keep (queue
// full, its bytes over the bound, the body over the cap) is still allowed
// when its request uid can be read, and leaves a taint so that no other
// claim names the author of its write. A body that is not an
// AdmissionReview v1 with a request uid is a 4xx.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { answerSeconds.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "admission webhook accepts POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > maxBodyBytes {
		h.dropScanned(w, r.Body, dropTooLarge)
		return
	}
	cost := r.ContentLength
	if cost < 0 {
		cost = maxBodyBytes
	}
	if !h.reserve(cost) {
		h.dropScanned(w, r.Body, dropQueueBytes)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 {
		// One read past the end finds EOF without growing the buffer.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	keepBody := false
	defer func() {
		if !keepBody {
			putBody(buf)
		}
	}()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxBodyBytes+1)); err != nil {
		h.release(cost)
		requestsMalformed.Inc()
		http.Error(w, fmt.Sprintf("reading admission review: %v", err), http.StatusBadRequest)
		return
	}
	if buf.Len() > maxBodyBytes {
		// Sent without a length, or a wrong one: scan on from what was read.
		h.release(cost)
		h.dropScanned(w, io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body), dropTooLarge)
		return
	}
	if n := int64(buf.Len()); n < cost {
		h.release(cost - n)
		cost = n
	}
	queued := false
	defer func() {
		if !queued {
			h.release(cost)
		}
	}()
	rv, err := decodeReview(buf.Bytes())
	if err != nil {
		requestsMalformed.Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if rv.Request == nil || rv.Request.UID == "" {
		requestsMalformed.Inc()
		http.Error(w, "admission review has no request uid", http.StatusBadRequest)
		return
	}
	if rv.APIVersion != reviewAPIVersion || rv.Kind != reviewKind {
		requestsMalformed.Inc()
		http.Error(w, fmt.Sprintf("expected %s %s, got %q %q", reviewAPIVersion, reviewKind, rv.APIVersion, rv.Kind), http.StatusBadRequest)
		return
	}
	req := rv.Request
	switch {
	case req.DryRun != nil && *req.DryRun:
		requestsDryRun.Inc()
	default:
		req.received = h.now()
		req.cost = cost
		req.key = taintOf(req)
		req.body = buf
		h.opts.Recorder.ClaimQueued(req.key)
		select {
		case h.queue <- req:
			queued = true
			keepBody = true
			requestsQueued.Inc()
			queueDepth.Inc()
		default:
			h.taint(req.key, dropQueueFull)
			h.opts.Recorder.ClaimDone(req.key)
		}
	}
	writeAllowed(w, req.UID)
}

// dropScanned handles a review the handler does not keep: a bounded scan
// reads its keys, its write is tainted, and it is allowed when it names a
// request uid (else 413: nothing to answer).
func (h *Handler) dropScanned(w http.ResponseWriter, body io.Reader, reason string) {
	sc := scanReview(body)
	if sc.uid == "" || sc.apiVersion != reviewAPIVersion || sc.kind != reviewKind {
		requestsMalformed.Inc()
		http.Error(w, fmt.Sprintf("admission review not kept (%s) and no request uid found", reason), http.StatusRequestEntityTooLarge)
		return
	}
	if !sc.dryRun {
		h.taint(sc.taint(), reason)
	}
	writeAllowed(w, sc.uid)
}

// taint counts a dropped claim and hands its taint to the recorder.
func (h *Handler) taint(t change.Taint, reason string) {
	if reason != dropFailed {
		requestsDropped.Inc() // a failed request was counted as queued
	}
	droppedTotal.WithLabelValues(reason).Inc()
	h.opts.Recorder.AddTaint(t)
}

// The allowed response is always the same but for the uid.
const (
	allowedPrefix = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":`
	allowedSuffix = `,"allowed":true}}`
)

// contentTypeJSON is shared by every response (Header().Set would
// allocate it each time); nothing downstream writes into a header's
// values in place.
var contentTypeJSON = []string{"application/json"}

// answerPool recycles response buffers: the ResponseWriter copies what
// it is given.
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// writeAllowed writes the allowed response without reflection: the uid is
// the only variable part.
func writeAllowed(w http.ResponseWriter, uid string) {
	bp := answerPool.Get().(*[]byte)
	out := append((*bp)[:0], allowedPrefix...)
	out = appendJSONString(out, uid)
	out = append(out, allowedSuffix...)
	w.Header()["Content-Type"] = contentTypeJSON
	_, _ = w.Write(out)
	if cap(out) <= 4<<10 {
		*bp = out
		answerPool.Put(bp)
	}
}

// appendJSONString appends s as a JSON string. Request uids are UUIDs, so
// the fast path covers them; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
