package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// FuzzHandler feeds the handler and its worker arbitrary bodies. What it
// asserts, for every body:
//   - no panic, and no body bytes held once the queue is drained;
//   - a body the handler decodes as an AdmissionReview v1 with a request
//     uid (the API server only sends those) is answered 200, allowed: true,
//     for that uid; anything else is a 4xx;
//   - a body declared larger than the cap is scanned, not read: it is
//     answered allowed for the uid the scan found, or 413;
//   - a 4xx records nothing (no claim, no taint); a claim is recorded only
//     from a review whose object decodes, and names the review's user.
func FuzzHandler(f *testing.F) {
	seed := func(req map[string]interface{}) []byte {
		b, _ := json.Marshal(map[string]interface{}{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
		return b
	}
	for _, op := range []string{"CREATE", "UPDATE", "DELETE", "CONNECT"} {
		f.Add(seed(configMapRequest(op, false)), false)
		f.Add(seed(configMapRequest(op, true)), true)
	}
	scale := configMapRequest("UPDATE", false)
	scale["resource"] = map[string]interface{}{"group": "apps", "version": "v1", "resource": "deployments"}
	scale["subResource"] = "scale"
	scale["object"] = json.RawMessage(`{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"uid":"d","resourceVersion":"9"},"spec":{"replicas":1.5e0}}`)
	f.Add(seed(scale), false)
	odd := configMapRequest("UPDATE", false)
	odd["object"] = json.RawMessage(`{"metadata":{"uid":"u","resourceVersion":"1"},"data":{"a":-0,"b":1e999,"c":123456789012345678901234567890}}`)
	f.Add(seed(odd), false)
	missing := configMapRequest("UPDATE", false)
	delete(missing, "object")
	delete(missing, "oldObject")
	f.Add(seed(missing), false)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":[],"oldObject":"s","operation":"DELETE"}}`), false)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","UID":"y","uid":"z"}}`), true)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), false)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"UPDATE","object":{"metadata":{"uid":"`), true)
	f.Add([]byte(`[1,2,3]`), false)
	f.Add([]byte(``), true)

	f.Fuzz(func(t *testing.T, body []byte, declaredHuge bool) {
		rec := &recorder{}
		h, err := NewHandler(Options{Index: testIndex(), Recorder: rec, QueueSize: 2, QueueBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		if declaredHuge {
			r.ContentLength = maxBodyBytes + 1
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		for len(h.queue) > 0 {
			h.handle(<-h.queue)
		}
		if n := h.bytes.Load(); n != 0 {
			t.Fatalf("%d body bytes still held with the queue drained", n)
		}
		if n := rec.queuedClaims(); n != 0 {
			t.Fatalf("%d claims still announced as queued with the queue drained", n)
		}

		var want review
		decodes := json.Unmarshal(body, &want) == nil && want.Request != nil && want.Request.UID != "" &&
			want.APIVersion == reviewAPIVersion && want.Kind == reviewKind
		var answer struct {
			Response struct {
				UID     string `json:"uid"`
				Allowed bool   `json:"allowed"`
			} `json:"response"`
		}
		answered := w.Code == http.StatusOK && json.Unmarshal(w.Body.Bytes(), &answer) == nil && answer.Response.Allowed
		switch {
		case declaredHuge:
			sc := scanReview(bytes.NewReader(body))
			if w.Code == http.StatusOK && (!answered || answer.Response.UID != sc.uid || sc.uid == "") {
				t.Fatalf("oversized review answered %d %s, scan found uid %q", w.Code, w.Body.String(), sc.uid)
			}
			if w.Code != http.StatusOK && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("oversized body answered %d, want 200 or 413", w.Code)
			}
		case decodes:
			if !answered || answer.Response.UID != want.Request.UID {
				t.Fatalf("review %q answered %d %s, want allowed", want.Request.UID, w.Code, w.Body.String())
			}
		default:
			if w.Code < 400 || w.Code > 499 {
				t.Fatalf("non-review answered %d %s, want a 4xx", w.Code, w.Body.String())
			}
		}
		if w.Code != http.StatusOK && (len(rec.snapshot()) != 0 || len(rec.taintSnapshot()) != 0) {
			t.Fatalf("a refused body recorded %d claims and %d taints", len(rec.snapshot()), len(rec.taintSnapshot()))
		}
		for _, p := range rec.snapshot() {
			if declaredHuge || !decodes {
				t.Fatalf("claim %+v recorded from a body that was not kept", p)
			}
			if p.User.Username != want.Request.UserInfo.Username {
				t.Fatalf("claim names %q, the review %q", p.User.Username, want.Request.UserInfo.Username)
			}
			switch p.Operation {
			case v1alpha1.OperationCreate, v1alpha1.OperationUpdate, v1alpha1.OperationDelete:
			default:
				t.Fatalf("claim with operation %q", p.Operation)
			}
			subject := want.Request.Object
			if p.Operation == v1alpha1.OperationDelete || len(subject) == 0 || string(subject) == "null" {
				subject = want.Request.OldObject
			}
			var m map[string]interface{}
			if err := utiljson.Unmarshal(subject, &m); err != nil {
				t.Fatalf("claim recorded from an object that does not decode: %v", err)
			}
		}
	})
}

// FuzzScanReview checks the bounded scan against encoding/json on reviews
// written as the API server writes them (encoding/json, canonical keys):
// whatever the strings hold, the scan finds the same keys.
func FuzzScanReview(f *testing.F) {
	f.Add("req-1", "UPDATE", "settings", "obj-uid", "41", "obj-uid", "40", "x")
	f.Add("r\"2", "DELETE", "a\\b", "u\x00", "1\n", "", "", "{[\"\\")
	f.Add("", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, uid, op, name, objUID, objRV, oldUID, oldRV, pad string) {
		meta := func(u, rv string) map[string]interface{} {
			return map[string]interface{}{
				"apiVersion": "v1", "kind": "ConfigMap",
				"data":     map[string]interface{}{"pad": pad, "uid": pad, "metadata": map[string]interface{}{"uid": pad}},
				"metadata": map[string]interface{}{"name": name, "annotations": map[string]interface{}{"uid": pad}, "uid": u, "resourceVersion": rv},
			}
		}
		body, err := json.Marshal(map[string]interface{}{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]interface{}{
				"uid": uid, "operation": op, "name": name, "namespace": pad,
				"userInfo": map[string]interface{}{"username": pad, "uid": pad},
				"object":   meta(objUID, objRV), "oldObject": meta(oldUID, oldRV),
			},
		})
		if err != nil {
			// Maps of strings always marshal (invalid UTF-8 becomes U+FFFD).
			t.Fatalf("marshalling the review: %v", err)
		}
		// encoding/json writes invalid UTF-8 as U+FFFD: compare with what
		// it decodes.
		var want struct {
			Request struct {
				UID, Operation, Name string
				Object, OldObject    struct {
					Metadata struct{ UID, ResourceVersion, Name string }
				}
			}
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("encoding/json cannot read its own output: %v", err)
		}
		sc := scanReview(bytes.NewReader(body))
		w := want.Request
		got := []string{sc.uid, sc.operation, sc.name, sc.objUID, sc.objRV, sc.oldUID, sc.oldRV, sc.objName}
		exp := []string{w.UID, w.Operation, w.Name, w.Object.Metadata.UID, w.Object.Metadata.ResourceVersion,
			w.OldObject.Metadata.UID, w.OldObject.Metadata.ResourceVersion, w.Object.Metadata.Name}
		for i := range got {
			// The scan keeps strings up to maxScanString bytes (JSON form).
			if got[i] != exp[i] && !(got[i] == "" && len(exp[i]) > maxScanString/6) {
				t.Fatalf("field %d: scan found %q, encoding/json %q", i, got[i], exp[i])
			}
		}
		u, rv, n := scanObject(mustJSON(t, meta(objUID, objRV)))
		if (u != w.Object.Metadata.UID && len(w.Object.Metadata.UID) <= maxScanString/6) ||
			(rv != w.Object.Metadata.ResourceVersion && len(w.Object.Metadata.ResourceVersion) <= maxScanString/6) ||
			(n != w.Object.Metadata.Name && len(w.Object.Metadata.Name) <= maxScanString/6) {
			t.Fatalf("scanObject found %q %q %q", u, rv, n)
		}
	})
}

func mustJSON(t *testing.T, v interface{}) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
