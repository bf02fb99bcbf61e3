package admission

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// decodeSeeds are reviews the API server writes and the oddities the fast
// path must hand to encoding/json (or read exactly as it does).
func decodeSeeds(t testing.TB) [][]byte {
	body, err := os.ReadFile("testdata/deployment-update-review.json")
	if err != nil {
		t.Fatal(err)
	}
	s := string(body)
	head := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":`
	return [][]byte{
		body,
		[]byte(" \n" + s + "\t\r\n"),
		[]byte(s + "x"),
		[]byte(s + "{}"),
		[]byte(s[:len(s)-1]),
		[]byte(strings.Replace(s, `"uid":"0d6a`, `"UID":"0d6a`, 1)),
		[]byte(strings.Replace(s, `"uid":"0d6a`, `"uid":"x","uid":"0d6a`, 1)),
		[]byte(strings.Replace(s, `"uid":"0d6a`, `"u\u0069d":"0d6a`, 1)),
		[]byte(strings.Replace(s, `"kind":"AdmissionReview"`, `"\u212aind":"AdmissionReview"`, 1)),
		[]byte(strings.Replace(s, `"kind":"AdmissionReview"`, `"kind":"Admission\u0052eview"`, 1)),
		[]byte(strings.Replace(s, `"username":"alice@example.com"`, `"username":"al\xffice"`, 1)),
		[]byte(strings.Replace(s, `"username":"alice@example.com"`, `"username":"al\u00e9ice"`, 1)),
		[]byte(strings.Replace(s, `"username":"alice@example.com"`, `"username":"alïce"`, 1)),
		[]byte(strings.Replace(s, `"username":"alice@example.com"`, `"username":null`, 1)),
		[]byte(strings.Replace(s, `"username":"alice@example.com"`, `"username":7`, 1)),
		[]byte(strings.Replace(s, `"groups":["developers","system:authenticated"]`, `"groups":[]`, 1)),
		[]byte(strings.Replace(s, `"groups":["developers","system:authenticated"]`, `"groups":["a",null]`, 1)),
		[]byte(strings.Replace(s, `"groups":["developers","system:authenticated"]`, `"groups":["a"],"groups":["b","c"]`, 1)),
		[]byte(strings.Replace(s, `"extra":{`, `"extra":{"k":[],"k":["v"],`, 1)),
		[]byte(strings.Replace(s, `"extra":{`, `"extra":{"k":null,`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","dryRun":true`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","dryRun":false`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","dryRun":"true"`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","dryRun":null`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":[1,-0,0.5,1e9,-2E-3,true,false,null,{"a":[]}]`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":01`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":1.`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":"\q"`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":"a`+"\x01"+`"`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":tru`, 1)),
		[]byte(strings.Replace(s, `"name":"web"`, `"name":"web","x":`+strings.Repeat("[", 300)+strings.Repeat("]", 300), 1)),
		[]byte(strings.Replace(s, `"metadata":{"name":"web"`, `"metadata":{"name":"w\"eb"`, 1)),
		[]byte(strings.Replace(s, `"metadata":{"name":"web"`, `"metadata":{"uid":true,"name":"web"`, 1)),
		[]byte(strings.Replace(s, `"metadata":{"name":"web"`, `"metadata":{"name":"web","uid":5`, 1)),
		[]byte(strings.Replace(s, `"metadata":{"name":"web"`, `"meta\u0064ata":{"uid":"x"},"metadata":{"name":"web"`, 1)),
		[]byte(strings.Replace(s, `"metadata":{"name":"web"`, `"metadata":{"name":"`+strings.Repeat("n", maxScanString+1)+`"`, 1)),
		[]byte(head + `{"uid":"d","operation":"DELETE","object":null,"oldObject":{"metadata":{"uid":"u","resourceVersion":"3","name":"n"}}}}`),
		[]byte(head + `{"uid":"d","operation":"DELETE","object":[],"oldObject":"s"}}`),
		[]byte(head + `{"uid":"d","object" : { "metadata" : { "uid" : "u" } } , "oldObject":{"metadata":[]}}}`),
		[]byte(head + `null}`),
		[]byte(head + `{"uid":""}}`),
		[]byte(head + `{"uid":"x"},"request":{"name":"y"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		[]byte(`[1,2,3]`),
		[]byte(`null`),
		[]byte(``),
		[]byte(`{`),
	}
}

// exported is the part of a request encoding/json fills.
func exported(r *request) *request {
	if r == nil {
		return nil
	}
	c := *r
	c.objKeys, c.oldKeys, c.body = objectKeys{}, objectKeys{}, nil
	return &c
}

// checkDecode compares decodeReview with encoding/json on body: both
// accept it or both refuse it, with the same review; the metadata keys the
// fast path read are those scanObject finds.
func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	var want review
	wantErr := json.Unmarshal(body, &want)
	got, gotErr := decodeReview(body)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("encoding/json: %v, decodeReview: %v", wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if got.APIVersion != want.APIVersion || got.Kind != want.Kind ||
		!reflect.DeepEqual(exported(got.Request), exported(want.Request)) {
		t.Fatalf("decodeReview read\n%+v %+v\nencoding/json\n%+v %+v", got, got.Request, want, want.Request)
	}
	if got.Request == nil {
		return
	}
	for _, k := range []struct {
		keys objectKeys
		raw  json.RawMessage
	}{{got.Request.objKeys, got.Request.Object}, {got.Request.oldKeys, got.Request.OldObject}} {
		if !k.keys.scanned {
			continue
		}
		u, rv, n := scanObject(k.raw)
		if k.keys.keys != [3]string{u, rv, n} {
			t.Fatalf("fast path read keys %q, scanObject %q", k.keys.keys, [3]string{u, rv, n})
		}
	}
}

func TestDecodeReview_seeds_sameAsEncodingJSON(t *testing.T) {
	for i, body := range decodeSeeds(t) {
		t.Run(fmt.Sprintf("seed%02d", i), func(t *testing.T) { checkDecode(t, body) })
	}
}

// TestDecodeReview_fastPath_takesAPIServerReviews guards the speed: the
// reviews the API server writes take the fast path, and their taint keys
// are read on the way.
func TestDecodeReview_fastPath_takesAPIServerReviews(t *testing.T) {
	seeds := decodeSeeds(t)
	head := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":`
	tests := []struct {
		name string
		body []byte
		fast bool
	}{
		{"deployment update", seeds[0], true},
		{"delete with a null object", []byte(head + `{"uid":"d","operation":"DELETE","object":null,"oldObject":{"metadata":{"uid":"u"}}}}`), true},
		{"non-ASCII username", []byte(strings.Replace(string(seeds[0]), "alice", "alïce", 1)), true},
		{"case-folded key", seeds[5], false},
		{"duplicate key", seeds[6], false},
		{"escaped key", seeds[7], false},
		{"escaped username", seeds[11], false},
		{"null username", seeds[13], false},
		{"syntax error", seeds[2], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rv review
			d := fastDecoder{b: tt.body}
			if fast := d.review(&rv); fast != tt.fast {
				t.Fatalf("fast path taken: %v, want %v", fast, tt.fast)
			}
			if tt.fast && (!rv.Request.objKeys.scanned || !rv.Request.oldKeys.scanned) {
				t.Fatalf("taint keys not read on the fast path: %+v %+v", rv.Request.objKeys, rv.Request.oldKeys)
			}
			if tt.fast && rv.Request.Operation == "UPDATE" && (!rv.Request.oldKeys.exact || !rv.Request.oldKeys.decodes) {
				t.Fatalf("an UPDATE's oldObject would be decoded without need: %+v", rv.Request.oldKeys)
			}
		})
	}
}

// FuzzDecodeReview is the differential proof of the fast path: on any
// body, decodeReview accepts exactly what encoding/json accepts, with the
// same review, and the taint keys it reads are scanObject's.
func FuzzDecodeReview(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecode(t, body) })
}

// FuzzDecodeReview_strings builds valid reviews around arbitrary strings
// (as the API server writes them, with encoding/json), where a byte
// fuzzer rarely gets past a syntax error.
func FuzzDecodeReview_strings(f *testing.F) {
	f.Add("req-1", "UPDATE", "web", "alice", "g", "k", "v", "u", "41", "")
	f.Add("r\"2", "DELETE", "a\\b", "\xff", "", "\u212a", "<&>", "u\x00", "1\n", "{[")
	f.Fuzz(func(t *testing.T, uid, op, name, user, group, extraKey, extraVal, objUID, rv, pad string) {
		obj := map[string]interface{}{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]interface{}{"name": name, "uid": objUID, "resourceVersion": rv, "labels": map[string]interface{}{pad: pad}},
			"data":     map[string]interface{}{"pad": pad, "n": 1.5},
		}
		body, err := json.Marshal(map[string]interface{}{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]interface{}{
				"uid": uid, "operation": op, "name": name, "namespace": pad, "subResource": pad,
				"resource": map[string]interface{}{"group": pad, "version": "v1", "resource": "configmaps"},
				"userInfo": map[string]interface{}{"username": user, "uid": pad, "groups": []string{group, pad},
					"extra": map[string][]string{extraKey: {extraVal}}},
				"object": obj, "oldObject": obj, "dryRun": len(pad)%2 == 0,
			},
		})
		if err != nil {
			t.Fatalf("marshalling the review: %v", err)
		}
		checkDecode(t, body)
	})
}

// labelIndex selects ConfigMaps labelled team=a, so that an UPDATE can
// leave the selection (the worker then needs oldObject's labels).
func labelIndex(t testing.TB) *rules.Index {
	sel, err := labels.Parse("team=a")
	if err != nil {
		t.Fatal(err)
	}
	ix := rules.NewIndex()
	ix.Upsert(&rules.Rule{
		Key:       rules.Key{Kind: rules.KindClusterWatchRule, Name: "team-a"},
		Resources: []rules.Resource{{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespaced: true}},
		Labels:    sel,
	})
	return ix
}

// checkLazyOld runs the worker on body twice: as it is (oldObject decoded
// only when the rules need its labels) and with the fast decode's
// exactness withheld (oldObject always decoded, as before): the claims and
// errors must be the same.
func checkLazyOld(t *testing.T, ix *rules.Index, body []byte) {
	t.Helper()
	rv, err := decodeReview(body)
	if err != nil || rv.Request == nil {
		return
	}
	eager := *rv.Request
	eager.oldKeys.exact = false
	run := func(req *request) ([]change.Pending, error) {
		rec := &recorder{}
		h, err := NewHandler(Options{Index: ix, Recorder: rec})
		if err != nil {
			t.Fatal(err)
		}
		err = h.process(req)
		return rec.snapshot(), err
	}
	gotP, gotErr := run(rv.Request)
	wantP, wantErr := run(&eager)
	if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(gotP, wantP) {
		t.Fatalf("oldObject decoded when needed: %+v, %v\nalways decoded: %+v, %v", gotP, gotErr, wantP, wantErr)
	}
}

func lazyOldSeeds() [][]byte {
	head := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"r","operation":"UPDATE","namespace":"ns","name":"c",` +
		`"resource":{"group":"","version":"v1","resource":"configmaps"},"userInfo":{"username":"alice"},`
	obj := func(labels, meta string) string {
		return `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns","uid":"u","resourceVersion":"5","labels":` + labels + meta + `},"data":{"n":1}}`
	}
	review := func(object, old string) []byte {
		return []byte(head + `"object":` + object + `,"oldObject":` + old + `}}`)
	}
	in, out := `{"team":"a"}`, `{"team":"b"}`
	return [][]byte{
		review(obj(in, ""), obj(in, "")),
		review(obj(out, ""), obj(in, "")),
		review(obj(out, ""), obj(out, "")),
		review(obj(in, ""), obj(in, `,"uid":"v","resourceVersion":"4"`)),
		review(obj(out, ""), obj(in, `,"uid":"v","resourceVersion":"4"`)),
		review(obj(in, ""), obj(in, `,"uid":true`)),
		review(obj(in, ""), obj(in, `,"resourceVersion":4`)),
		review(obj(in, ""), obj(in, `,"resourceVersion":"4","resourceVersion":null`)),
		review(obj(in, ""), `{"metadata":{"uid":"v"},"metadata":{"resourceVersion":"4"}}`),
		review(obj(in, ""), `{"metadata":{"uid":"v","resourceVersion":"4"},"x":1e999}`),
		review(obj(out, ""), `{"metadata":{"uid":"v","resourceVersion":"4","labels":{"team":"a"}},"x":1e999}`),
		review(obj(in, ""), `{"metadata":{"uid":"v","resourceVersion":"4"},"x":1`+strings.Repeat("0", 400)+`}`),
		review(obj(in, ""), `{"metadata":{"uid":"v","resourceVersion":"4"},"x":1.5e3}`),
		review(obj(in, ""), `{"metadata":{"uid":"v\u0041","resourceVersion":"4"}}`),
		review(obj(in, ""), `{"metadata":{"uid":"`+strings.Repeat("u", maxScanString+1)+`"}}`),
		review(obj(in, ""), `{"metadata":{"uid":true,"resourceVersion":"4"}}`),
		review(obj(in, ""), `{"metadata":{"uid":"v","resourceVersion":4}}`),
		review(obj(in, ""), `{"metadata":"m"}`),
		review(obj(in, ""), `[]`),
		review(obj(in, ""), `null`),
		review(obj(in, ""), `{}`),
	}
}

func TestProcess_oldObjectOnlyWhenNeeded_sameClaims(t *testing.T) {
	for i, body := range append(lazyOldSeeds(), decodeSeeds(t)...) {
		t.Run(fmt.Sprintf("seed%02d", i), func(t *testing.T) {
			checkLazyOld(t, labelIndex(t), body)
			checkLazyOld(t, testIndex(), body)
		})
	}
}

// FuzzProcess_oldObjectOnlyWhenNeeded is the differential proof of the
// lazy oldObject decode on UPDATE reviews around arbitrary strings.
func FuzzProcess_oldObjectOnlyWhenNeeded(f *testing.F) {
	f.Add("u", "5", "u", "4", "a", "a", "x")
	f.Add("u", "5", "", "", "b", "a", "")
	f.Add("u\"", "5\\", "v\xff", "4\u00e9", "a", "b", "\x00")
	f.Fuzz(func(t *testing.T, uid, rv, oldUID, oldRV, team, oldTeam, pad string) {
		meta := func(u, r, tm string) map[string]interface{} {
			return map[string]interface{}{"name": "c", "namespace": "ns", "uid": u, "resourceVersion": r,
				"labels": map[string]interface{}{"team": tm, pad: pad}}
		}
		body, err := json.Marshal(map[string]interface{}{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]interface{}{
				"uid": "r", "operation": "UPDATE", "namespace": "ns", "name": "c",
				"resource": map[string]interface{}{"group": "", "version": "v1", "resource": "configmaps"},
				"userInfo": map[string]interface{}{"username": "alice"},
				"object":   map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(uid, rv, team), "data": map[string]interface{}{"n": 1, "p": pad}},
				"oldObject": map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(oldUID, oldRV, oldTeam),
					"data": map[string]interface{}{"n": 2.5}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkLazyOld(t, labelIndex(t), body)
	})
}
