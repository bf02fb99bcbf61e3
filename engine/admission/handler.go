package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
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
	// maxBodyBytes bounds a review: etcd's request limit is 1.5 MiB per
	// object and a review carries object and oldObject.
	maxBodyBytes = 8 << 20
	// DefaultQueueSize is the queue length when Options.QueueSize is 0.
	DefaultQueueSize = 4096
	// DefaultWorkers is the number of workers when Options.Workers is 0.
	DefaultWorkers = 2
)

// PendingRecorder receives the pending changes the workers record; the
// confirm stage's store implements it. AddPending must not block for long.
type PendingRecorder interface {
	AddPending(p change.Pending)
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
	Object    json.RawMessage `json:"object"`
	OldObject json.RawMessage `json:"oldObject"`
	DryRun    *bool           `json:"dryRun"`

	received time.Time
}

type gvr struct {
	Group    string `json:"group"`
	Version  string `json:"version"`
	Resource string `json:"resource"`
}

// bodyPool recycles request bodies; the decoded RawMessages are copies.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP answers an AdmissionReview with allowed: true and queues the
// request. It never waits for the queue.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "admission webhook accepts POST only", http.StatusMethodNotAllowed)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyPool.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxBodyBytes+1)); err != nil {
		requestsMalformed.Inc()
		http.Error(w, fmt.Sprintf("reading admission review: %v", err), http.StatusBadRequest)
		return
	}
	if buf.Len() > maxBodyBytes {
		requestsMalformed.Inc()
		http.Error(w, fmt.Sprintf("admission review larger than %d bytes", maxBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	var rv review
	if err := json.Unmarshal(buf.Bytes(), &rv); err != nil {
		requestsMalformed.Inc()
		http.Error(w, fmt.Sprintf("decoding admission review: %v", err), http.StatusBadRequest)
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
		select {
		case h.queue <- req:
			requestsQueued.Inc()
			queueDepth.Inc()
		default:
			requestsDropped.Inc()
		}
	}
	writeAllowed(w, req.UID)
}

// writeAllowed writes the allowed response without reflection: the uid is
// the only variable part.
func writeAllowed(w http.ResponseWriter, uid string) {
	out := make([]byte, 0, 128+len(uid))
	out = append(out, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":`...)
	out = appendJSONString(out, uid)
	out = append(out, `,"allowed":true}}`...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
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
