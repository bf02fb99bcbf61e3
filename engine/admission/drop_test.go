package admission

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// bigRequest is configMapRequest with a data value of n bytes in object
// and oldObject.
func bigRequest(op string, n int) map[string]interface{} {
	req := configMapRequest(op, false)
	for _, k := range []string{"object", "oldObject"} {
		if o, ok := req[k].(map[string]interface{}); ok {
			c := map[string]interface{}{}
			for kk, v := range o {
				c[kk] = v
			}
			c["data"] = map[string]interface{}{"big": strings.Repeat("<", n)}
			req[k] = c
		}
	}
	return req
}

func TestScanReview_findsTheKeysDecodingFinds(t *testing.T) {
	tests := []struct {
		name string
		body func(t *testing.T) string
	}{
		{name: "update", body: func(t *testing.T) string { return reviewJSON(t, configMapRequest("UPDATE", false)) }},
		{name: "create", body: func(t *testing.T) string { return reviewJSON(t, configMapRequest("CREATE", false)) }},
		{name: "delete", body: func(t *testing.T) string { return reviewJSON(t, configMapRequest("DELETE", false)) }},
		{name: "dry run", body: func(t *testing.T) string { return reviewJSON(t, configMapRequest("UPDATE", true)) }},
		{name: "large object before the keys of oldObject", body: func(t *testing.T) string { return reviewJSON(t, bigRequest("UPDATE", 1<<20)) }},
		{name: "escapes in strings and keys", body: func(*testing.T) string {
			return `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io\/v1","request":{"uid":"r\u002d1","operation":"UPDATE",` +
				`"resource":{"group":"","version":"v1","resource":"configmaps"},"namespace":"team","name":"settings",` +
				`"object":{"data":{"x":"a \"quoted\" }{ ]["},"metadata":{"name":"settings","uid":"obj-uid","resourceVersion":"41"}},` +
				`"oldObject":{"metadata":{"annotations":{"a":"[{\\\"}\\\\"},"uid":"obj-uid","resourceVersion":"41"}}}}`
		}},
		{name: "whitespace and nested arrays", body: func(*testing.T) string {
			return "{ \"apiVersion\" : \"admission.k8s.io/v1\" ,\n \"kind\":\"AdmissionReview\", \"request\" : { \"object\": { \"spec\": [[1,2,{\"metadata\":{\"uid\":\"decoy\"}}]], " +
				"\"metadata\" : { \"uid\" : \"obj-uid\" , \"resourceVersion\":\"41\" } } , \"uid\":\"r-2\", \"operation\":\"UPDATE\", \"dryRun\": false } }"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body(t)
			var rv struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Request    struct {
					UID       string `json:"uid"`
					Operation string `json:"operation"`
					DryRun    bool   `json:"dryRun"`
					Object    struct {
						Metadata struct {
							UID             string `json:"uid"`
							ResourceVersion string `json:"resourceVersion"`
						} `json:"metadata"`
					} `json:"object"`
					OldObject struct {
						Metadata struct {
							UID             string `json:"uid"`
							ResourceVersion string `json:"resourceVersion"`
						} `json:"metadata"`
					} `json:"oldObject"`
				} `json:"request"`
			}
			if err := json.Unmarshal([]byte(body), &rv); err != nil {
				t.Fatalf("test body is not JSON: %v", err)
			}
			sc := scanReview(strings.NewReader(body))
			got := []string{sc.apiVersion, sc.kind, sc.uid, sc.operation, sc.objUID, sc.objRV, sc.oldUID, sc.oldRV}
			want := []string{rv.APIVersion, rv.Kind, rv.Request.UID, rv.Request.Operation,
				rv.Request.Object.Metadata.UID, rv.Request.Object.Metadata.ResourceVersion,
				rv.Request.OldObject.Metadata.UID, rv.Request.OldObject.Metadata.ResourceVersion}
			if strings.Join(got, "|") != strings.Join(want, "|") || sc.dryRun != rv.Request.DryRun {
				t.Errorf("scan found %q dryRun=%v, decoding %q dryRun=%v", got, sc.dryRun, want, rv.Request.DryRun)
			}
		})
	}
}

func TestHandler_ServeHTTP_taintsWhatItDrops(t *testing.T) {
	updateTaint := change.Taint{Operation: v1alpha1.OperationUpdate, Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Namespace: "team", Name: "settings", UID: "obj-uid", OldResourceVersion: "41"}
	deleteTaint := updateTaint
	deleteTaint.Operation = v1alpha1.OperationDelete
	tests := []struct {
		name       string
		opts       Options
		fill       int // requests sent first to fill the queue
		body       func(t *testing.T) string
		unsized    bool // sent without Content-Length
		wantStatus int
		wantReason string
		wantTaint  *change.Taint
	}{
		{name: "queue full", opts: Options{QueueSize: 1}, fill: 1,
			body:       func(t *testing.T) string { return reviewJSON(t, configMapRequest("UPDATE", false)) },
			wantStatus: 200, wantReason: dropQueueFull, wantTaint: &updateTaint},
		{name: "queue bytes exhausted", opts: Options{QueueBytes: 64},
			body:       func(t *testing.T) string { return reviewJSON(t, configMapRequest("DELETE", false)) },
			wantStatus: 200, wantReason: dropQueueBytes, wantTaint: &deleteTaint},
		{name: "body over the cap", body: func(t *testing.T) string { return reviewJSON(t, bigRequest("UPDATE", 1<<20)) },
			wantStatus: 200, wantReason: dropTooLarge, wantTaint: &updateTaint},
		{name: "body over the cap without a length", unsized: true,
			body:       func(t *testing.T) string { return reviewJSON(t, bigRequest("UPDATE", 1<<20)) },
			wantStatus: 200, wantReason: dropTooLarge, wantTaint: &updateTaint},
		{name: "garbage over the cap is a 413", body: func(*testing.T) string { return strings.Repeat("x", maxBodyBytes+10) },
			wantStatus: 413},
		{name: "dry run over the cap taints nothing", body: func(t *testing.T) string {
			r := bigRequest("UPDATE", 1<<20)
			r["dryRun"] = true
			return reviewJSON(t, r)
		}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tt.opts.Index, tt.opts.Recorder = testIndex(), rec
			h, err := NewHandler(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tt.fill; i++ {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, Path, strings.NewReader(reviewJSON(t, configMapRequest("CREATE", false)))))
			}
			var before float64
			if tt.wantReason != "" {
				before = counterValue(t, droppedTotal.WithLabelValues(tt.wantReason))
			}
			var body io.Reader = strings.NewReader(tt.body(t))
			if tt.unsized {
				body = struct{ io.Reader }{body}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, body))
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d (%.200s), want %d", w.Code, w.Body.String(), tt.wantStatus)
			}
			if tt.wantStatus == 200 && !strings.Contains(w.Body.String(), `"uid":"req-1","allowed":true`) {
				t.Errorf("answer %s, want req-1 allowed", w.Body.String())
			}
			if tt.wantReason != "" {
				if d := counterValue(t, droppedTotal.WithLabelValues(tt.wantReason)) - before; d != 1 {
					t.Errorf("drops for %s counted %v, want 1", tt.wantReason, d)
				}
			}
			got := rec.taintSnapshot()
			switch {
			case tt.wantTaint == nil && len(got) != 0:
				t.Errorf("tainted %+v, want nothing", got)
			case tt.wantTaint != nil && (len(got) != 1 || got[0] != *tt.wantTaint):
				t.Errorf("tainted %+v, want %+v", got, *tt.wantTaint)
			}
			if n := h.bytes.Load(); n != queuedCost(h) {
				t.Errorf("%d bytes held, want those of the queued requests (%d)", n, queuedCost(h))
			}
			if n := rec.queuedClaims(); n != len(h.queue) {
				t.Errorf("%d claims announced as queued, %d in the queue", n, len(h.queue))
			}
		})
	}
}

// queuedCost sums the bytes the queued requests hold.
func queuedCost(h *Handler) int64 {
	var n int64
	for i := len(h.queue); i > 0; i-- {
		r := <-h.queue
		n += r.cost
		h.queue <- r
	}
	return n
}

func TestHandler_Start_namespaceIsClusterScoped(t *testing.T) {
	ix := rules.NewIndex()
	// A rule with a namespace selector, as in the report: it does not
	// apply to Namespaces (cluster-scoped), its label selector does.
	ix.Upsert(&rules.Rule{
		Key:             rules.Key{Kind: rules.KindClusterWatchRule, Name: "team-namespaces"},
		Resources:       []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}}},
		NamespaceLabels: labels.SelectorFromSet(labels.Set{"team": "a"}),
		Labels:          labels.SelectorFromSet(labels.Set{"team": "a"}),
	})
	rec := &recorder{}
	// No namespace is known to the labeler: at its creation, no cache
	// holds the namespace yet.
	unknown := func(string) (labels.Set, bool) { return nil, false }
	h, err := NewHandler(Options{Index: ix, NamespaceLabels: unknown, Recorder: rec, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, team := range []string{"b", "a"} {
		ns := map[string]interface{}{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]interface{}{
			"name": "team-" + team, "uid": "ns-" + team, "labels": map[string]interface{}{"team": team}}}
		body := reviewJSON(t, map[string]interface{}{
			"uid": "req-" + team, "resource": map[string]interface{}{"group": "", "version": "v1", "resource": "namespaces"},
			// The API server names the namespace itself here.
			"namespace": "team-" + team, "name": "team-" + team, "operation": "CREATE",
			"userInfo": map[string]interface{}{"username": "alice"}, "object": ns,
		})
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body)))
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(rec.snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	got := rec.snapshot()
	if len(got) != 1 || got[0].UID != "ns-a" || got[0].Namespace != "" || got[0].User.Username != "alice" || got[0].Fingerprint == "" {
		t.Fatalf("recorded %+v, want alice's creation of team-a only, cluster-scoped (no namespace)", got)
	}
}

func TestHandler_Start_taintsWhatItCannotRead(t *testing.T) {
	rec := &recorder{}
	h, err := NewHandler(Options{Index: testIndex(), Recorder: rec, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	req := configMapRequest("UPDATE", false)
	// An object utiljson cannot decode (a number out of float64's range).
	req["object"] = json.RawMessage(`{"metadata":{"uid":"obj-uid","resourceVersion":"41"},"data":{"n":1e999}}`)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, Path, strings.NewReader(reviewJSON(t, req))))
	deadline := time.Now().Add(20 * time.Second)
	for len(rec.taintSnapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := rec.taintSnapshot()
	if len(got) != 1 || got[0].UID != "obj-uid" || got[0].OldResourceVersion != "41" || len(rec.snapshot()) != 0 {
		t.Fatalf("taints %+v, pending %+v; want one taint of obj-uid@41 and no claim", got, rec.snapshot())
	}
	for h.bytes.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.bytes.Load(); n != 0 {
		t.Errorf("%d bytes still held after the worker", n)
	}
}
