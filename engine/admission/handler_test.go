package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
	"github.com/gitops-reverser/gitops-reverser/engine/telemetry"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// recorder collects pending changes and taints.
type recorder struct {
	mu       sync.Mutex
	pending  []change.Pending
	taints   []change.Taint
	inFlight map[change.Taint]int
}

func (r *recorder) AddPending(p change.Pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p)
}

func (r *recorder) AddTaint(t change.Taint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taints = append(r.taints, t)
}

func (r *recorder) ClaimQueued(key change.Taint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight == nil {
		r.inFlight = map[change.Taint]int{}
	}
	r.inFlight[key]++
}

func (r *recorder) ClaimDone(key change.Taint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight[key]--
	if r.inFlight[key] == 0 {
		delete(r.inFlight, key)
	}
}

func (r *recorder) queuedClaims() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.inFlight {
		n += c
	}
	return n
}

func (r *recorder) taintSnapshot() []change.Taint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change.Taint(nil), r.taints...)
}

func (r *recorder) snapshot() []change.Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change.Pending(nil), r.pending...)
}

func testIndex() *rules.Index {
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key: rules.Key{Kind: rules.KindClusterWatchRule, Name: "all"},
		Resources: []rules.Resource{
			{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespaced: true},
			{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, Namespaced: true},
		},
	})
	return ix
}

func counterValue(t *testing.T, c interface{ Value() float64 }) float64 {
	t.Helper()
	return c.Value()
}

func reviewJSON(t *testing.T, req map[string]interface{}) string {
	t.Helper()
	b, err := json.Marshal(map[string]interface{}{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func configMapRequest(op string, dryRun bool) map[string]interface{} {
	obj := map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{"name": "settings", "namespace": "team", "uid": "obj-uid", "resourceVersion": "41"},
		"data":     map[string]interface{}{"replicas": "3"},
	}
	req := map[string]interface{}{
		"uid":       "req-1",
		"kind":      map[string]interface{}{"group": "", "version": "v1", "kind": "ConfigMap"},
		"resource":  map[string]interface{}{"group": "", "version": "v1", "resource": "configmaps"},
		"namespace": "team", "name": "settings", "operation": op,
		"userInfo": map[string]interface{}{"username": "alice", "uid": "a-1", "groups": []string{"devs", "system:authenticated"}},
		"dryRun":   dryRun,
	}
	switch op {
	case "DELETE":
		req["oldObject"] = obj
	case "UPDATE":
		req["object"], req["oldObject"] = obj, obj
	default:
		req["object"] = obj
	}
	return req
}

func TestHandler_ServeHTTP_answers(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		body       func(t *testing.T) string
		wantStatus int
		wantResult string // counter label that must grow by one
		wantQueued int
	}{
		{name: "update is allowed and queued", method: http.MethodPost, body: func(t *testing.T) string { return reviewJSON(t, configMapRequest("UPDATE", false)) }, wantStatus: 200, wantResult: resultQueued, wantQueued: 1},
		{name: "dry run is allowed and dropped", method: http.MethodPost, body: func(t *testing.T) string { return reviewJSON(t, configMapRequest("UPDATE", true)) }, wantStatus: 200, wantResult: resultDryRun},
		{name: "garbage is a 400", method: http.MethodPost, body: func(*testing.T) string { return "{not json" }, wantStatus: 400, wantResult: resultMalformed},
		{name: "no request uid is a 400", method: http.MethodPost, body: func(*testing.T) string {
			return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`
		}, wantStatus: 400, wantResult: resultMalformed},
		{name: "wrong version is a 400", method: http.MethodPost, body: func(*testing.T) string {
			return `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`
		}, wantStatus: 400, wantResult: resultMalformed},
		{name: "GET is refused", method: http.MethodGet, body: func(*testing.T) string { return "" }, wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHandler(Options{Index: testIndex(), Recorder: &recorder{}, QueueSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			var before float64
			if tt.wantResult != "" {
				before = counterValue(t, requestsTotal.WithLabelValues(tt.wantResult))
			}
			timedBefore, _ := telemetry.Sum("gitops_reverser_admission_duration_seconds")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, Path, strings.NewReader(tt.body(t))))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body.String(), tt.wantStatus)
			}
			if timed, err := telemetry.Sum("gitops_reverser_admission_duration_seconds"); err != nil || timed-timedBefore != 1 {
				t.Errorf("answer timed %v times (%v), want 1", timed-timedBefore, err)
			}
			if tt.wantResult != "" {
				if d := counterValue(t, requestsTotal.WithLabelValues(tt.wantResult)) - before; d != 1 {
					t.Errorf("result %q counted %v times, want 1", tt.wantResult, d)
				}
			}
			if len(h.queue) != tt.wantQueued {
				t.Errorf("queued %d, want %d", len(h.queue), tt.wantQueued)
			}
			if rec.Code != 200 {
				return
			}
			var resp struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Response   struct {
					UID     string `json:"uid"`
					Allowed bool   `json:"allowed"`
				} `json:"response"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("response is not JSON: %v", err)
			}
			if resp.APIVersion != "admission.k8s.io/v1" || resp.Kind != "AdmissionReview" || resp.Response.UID != "req-1" || !resp.Response.Allowed {
				t.Errorf("response %+v, want an allowed v1 AdmissionReview for req-1", resp)
			}
		})
	}
}

func TestHandler_ServeHTTP_fullQueueStillAllows(t *testing.T) {
	h, err := NewHandler(Options{Index: testIndex(), Recorder: &recorder{}, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	body := reviewJSON(t, configMapRequest("UPDATE", false))
	before := counterValue(t, requestsDropped)
	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body)))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"allowed":true`) {
			t.Fatalf("request %d: %d %s, want allowed", i, rec.Code, rec.Body.String())
		}
	}
	if d := counterValue(t, requestsDropped) - before; d != 2 {
		t.Errorf("dropped %v, want 2", d)
	}
}

// TestHandler_ServeHTTP_queuedBodyOutlivesAnswer: a queued request's
// object points into its body, which must not be reused by the reviews
// answered while it waits; the answers, written from a pooled buffer, are
// exact for each uid.
func TestHandler_ServeHTTP_queuedBodyOutlivesAnswer(t *testing.T) {
	rec := &recorder{}
	h, err := NewHandler(Options{Index: testIndex(), Recorder: rec, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	queued := configMapRequest("UPDATE", false)
	serve := func(req map[string]interface{}) string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, strings.NewReader(reviewJSON(t, req))))
		if w.Code != http.StatusOK {
			t.Fatalf("answered %d %s", w.Code, w.Body.String())
		}
		return w.Body.String()
	}
	serve(queued)
	for i := 0; i < 20; i++ {
		other := configMapRequest("UPDATE", i%2 == 0) // dry runs and drops (queue full)
		other["uid"] = fmt.Sprintf("other-%d", i)
		other["userInfo"] = map[string]interface{}{"username": "mallory"}
		obj := other["object"].(map[string]interface{})
		obj["metadata"] = map[string]interface{}{"name": "settings", "namespace": "team", "uid": "zzzzzzz", "resourceVersion": "99"}
		obj["data"] = map[string]interface{}{"replicas": "9"}
		want := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"other-%d","allowed":true}}`, i)
		if got := serve(other); got != want {
			t.Fatalf("answer %s, want %s", got, want)
		}
	}
	h.handle(<-h.queue)
	got := rec.snapshot()
	if len(got) != 1 {
		t.Fatalf("recorded %d claims, want 1", len(got))
	}
	wantFP, err := transform.Fingerprint(mustUnstructured(t, queued["object"]))
	if err != nil {
		t.Fatal(err)
	}
	if p := got[0]; p.User.Username != "alice" || p.UID != "obj-uid" || p.OldResourceVersion != "41" || p.Fingerprint != wantFP {
		t.Fatalf("claim %+v, want alice's of obj-uid at 41 with the queued object's fingerprint", p)
	}
}

func mustUnstructured(t *testing.T, obj interface{}) *unstructured.Unstructured {
	t.Helper()
	u, err := decodeObject(mustJSON(t, obj))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAppendJSONString_escapes(t *testing.T) {
	tests := []struct{ in string }{{"0b1c-uuid"}, {`quo"te`}, {"new\nline"}, {"<tag>&"}, {"ünïcode"}}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got string
			if err := json.Unmarshal(appendJSONString(nil, tt.in), &got); err != nil || got != tt.in {
				t.Errorf("round trip of %q gave %q, %v", tt.in, got, err)
			}
		})
	}
}

func TestHandler_Start_recordsPending(t *testing.T) {
	tests := []struct {
		name      string
		req       func() map[string]interface{}
		wantOp    v1alpha1.Operation
		wantRV    string
		wantFP    bool
		wantScale string
		wantNone  bool
	}{
		{name: "update keyed by old resourceVersion", req: func() map[string]interface{} { return configMapRequest("UPDATE", false) }, wantOp: "UPDATE", wantRV: "41", wantFP: true},
		{name: "create carries a fingerprint", req: func() map[string]interface{} { return configMapRequest("CREATE", false) }, wantOp: "CREATE", wantFP: true},
		{name: "delete uses oldObject", req: func() map[string]interface{} { return configMapRequest("DELETE", false) }, wantOp: "DELETE", wantRV: "41"},
		{name: "scale records replicas", req: func() map[string]interface{} {
			scale := map[string]interface{}{
				"apiVersion": "autoscaling/v1", "kind": "Scale",
				"metadata": map[string]interface{}{"name": "web", "namespace": "team", "uid": "obj-uid", "resourceVersion": "41"},
				"spec":     map[string]interface{}{"replicas": 5},
			}
			return map[string]interface{}{
				"uid": "req-1", "resource": map[string]interface{}{"group": "apps", "version": "v1", "resource": "deployments"},
				"subResource": "scale", "namespace": "team", "name": "web", "operation": "UPDATE",
				"userInfo": map[string]interface{}{"username": "alice"}, "object": scale, "oldObject": scale,
			}
		}, wantOp: "UPDATE", wantRV: "41", wantScale: ScaleFingerprint(5)},
		{name: "status is not recorded", req: func() map[string]interface{} {
			r := configMapRequest("UPDATE", false)
			r["subResource"] = "status"
			return r
		}, wantNone: true},
		{name: "unselected resource is not recorded", req: func() map[string]interface{} {
			r := configMapRequest("UPDATE", false)
			r["resource"] = map[string]interface{}{"group": "", "version": "v1", "resource": "secrets"}
			return r
		}, wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h, err := NewHandler(Options{Index: testIndex(), Recorder: rec, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = h.Start(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			// A marker request after the one under test: with one
			// worker, once the marker is recorded the first one has been
			// processed.
			marker := configMapRequest("CREATE", false)
			marker["userInfo"] = map[string]interface{}{"username": "marker"}
			for _, body := range []string{reviewJSON(t, tt.req()), reviewJSON(t, marker)} {
				srv := httptest.NewRecorder()
				h.ServeHTTP(srv, httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body)))
				if srv.Code != 200 {
					t.Fatalf("status %d", srv.Code)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			var got []change.Pending
			for {
				all := rec.snapshot()
				if n := len(all); n > 0 && all[n-1].User.Username == "marker" {
					got = all[:n-1]
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("timed out waiting for the marker request")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if tt.wantNone {
				if len(got) != 0 {
					t.Fatalf("recorded %+v, want nothing", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("recorded %d pending changes, want 1", len(got))
			}
			p := got[0]
			if p.Operation != tt.wantOp || p.OldResourceVersion != tt.wantRV || p.UID != "obj-uid" || p.User.Username != "alice" {
				t.Errorf("pending %s rv=%q uid=%q user=%q, want %s rv=%q uid=obj-uid user=alice", p.Operation, p.OldResourceVersion, p.UID, p.User.Username, tt.wantOp, tt.wantRV)
			}
			if tt.wantScale == "" && tt.wantFP != (p.Fingerprint != "") {
				t.Errorf("fingerprint %q, want one: %v", p.Fingerprint, tt.wantFP)
			}
			if tt.wantScale != "" && p.Fingerprint != tt.wantScale {
				t.Errorf("fingerprint %q, want %q", p.Fingerprint, tt.wantScale)
			}
			if p.Received.IsZero() {
				t.Error("Received not set")
			}
		})
	}
}

// panickingRecorder panics when a pending change is added, standing in for
// a bug in the worker's path.
type panickingRecorder struct{ recorder }

func (r *panickingRecorder) AddPending(change.Pending) { panic("bug") }

func TestHandler_handleGuarded_panicTaintsAndReturns(t *testing.T) {
	rec := &panickingRecorder{}
	h, err := NewHandler(Options{Index: testIndex(), Recorder: rec, QueueSize: 2, QueueBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(reviewJSON(t, configMapRequest("UPDATE", false))))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || len(h.queue) != 1 {
		t.Fatalf("review answered %d with %d queued, want 200 and 1", w.Code, len(h.queue))
	}
	h.handleGuarded(<-h.queue) // must not panic
	if n := len(rec.taintSnapshot()); n != 1 {
		t.Errorf("%d taints after a worker panic, want 1 (the claim is lost, its write unknown)", n)
	}
	if n := h.bytes.Load(); n != 0 {
		t.Errorf("%d body bytes still held after a worker panic", n)
	}
	if n := rec.queuedClaims(); n != 0 {
		t.Errorf("%d claims still announced as queued after a worker panic", n)
	}
}

// TestHandler_fingerprint_equalsWatchSide: the claim's fingerprint, taken
// from the object bytes the fast decode leaves in the body, equals the
// fingerprint the confirm stage computes from the same object as the
// dynamic client decodes a watch event (UnstructuredJSONScheme); else no
// claim would pair.
func TestHandler_fingerprint_equalsWatchSide(t *testing.T) {
	deployment, err := os.ReadFile("testdata/deployment-update-review.json")
	if err != nil {
		t.Fatal(err)
	}
	numbers := configMapRequest("UPDATE", false)
	numbers["object"] = json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","namespace":"team","uid":"obj-uid","resourceVersion":"41","labels":{"a":"b"}},` +
		`"data":{"k":"v\u00e9\n"},"spec":{"i":3,"f":1.5,"e":1e3,"neg":-0,"big":9007199254740993,"l":[true,null,{"x":[]}]}}`)
	tests := []struct {
		name string
		body string
	}{
		{"deployment update (API server's review)", string(deployment)},
		{"numbers, escapes, nesting", reviewJSON(t, numbers)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h, err := NewHandler(Options{Index: testIndex(), Recorder: rec, QueueSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, strings.NewReader(tt.body)))
			if w.Code != http.StatusOK {
				t.Fatalf("answered %d %s", w.Code, w.Body.String())
			}
			var rv struct {
				Request struct {
					Object json.RawMessage `json:"object"`
				} `json:"request"`
			}
			if err := json.Unmarshal([]byte(tt.body), &rv); err != nil {
				t.Fatal(err)
			}
			watched, _, err := unstructured.UnstructuredJSONScheme.Decode(rv.Request.Object, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := transform.Fingerprint(watched.(*unstructured.Unstructured))
			if err != nil {
				t.Fatal(err)
			}
			h.handle(<-h.queue)
			got := rec.snapshot()
			if len(got) != 1 || got[0].Fingerprint != want {
				t.Fatalf("claims %+v, want one with the watch side's fingerprint %s", got, want)
			}
		})
	}
}
