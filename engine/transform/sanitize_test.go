package transform

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixtures are objects as a kube-apiserver returns them; each has a golden
// file with the YAML a user finds in the repository.
var fixtures = []string{
	"deployment", "statefulset", "service", "service-headless",
	"service-loadbalancer", "pod", "pvc", "serviceaccount", "namespace",
	"job", "secret", "configmap", "certificate",
}

func TestSanitize_golden(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			got := mustMarshal(t, mustSanitize(t, loadObject(t, name+".json"), Options{}))
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatalf("write golden: %v", err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestSanitize_rules_perKind(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		absent  [][]string
		present map[string]interface{} // "a|b|c" path -> value
	}{
		{
			name:    "deployment drops server metadata and status, keeps defaults",
			fixture: "deployment.json",
			absent: [][]string{
				{"status"}, {"metadata", "uid"}, {"metadata", "resourceVersion"},
				{"metadata", "generation"}, {"metadata", "creationTimestamp"},
				{"metadata", "managedFields"}, {"metadata", "annotations"},
				{"spec", "template", "metadata", "creationTimestamp"},
			},
			present: map[string]interface{}{
				"spec|replicas":                int64(3),
				"spec|progressDeadlineSeconds": int64(600),
				"spec|strategy|type":           "RollingUpdate",
				"metadata|labels|app":          "web",
			},
		},
		{
			name:    "service drops allocated cluster IP and default IPv4 family",
			fixture: "service.json",
			absent: [][]string{
				{"spec", "clusterIP"}, {"spec", "clusterIPs"}, {"spec", "ipFamilies"},
				{"spec", "ipFamilyPolicy"}, {"status"}, {"metadata", "annotations"},
			},
			present: map[string]interface{}{
				"spec|sessionAffinity":       "None",
				"spec|internalTrafficPolicy": "Cluster",
				"spec|type":                  "ClusterIP",
			},
		},
		{
			name:    "headless service keeps None and a chosen dual stack",
			fixture: "service-headless.json",
			present: map[string]interface{}{
				"spec|clusterIP":      "None",
				"spec|clusterIPs":     []interface{}{"None"},
				"spec|ipFamilyPolicy": "RequireDualStack",
				"spec|ipFamilies":     []interface{}{"IPv4", "IPv6"},
			},
		},
		{
			name:    "load balancer drops health check port, keeps node port and IPv6",
			fixture: "service-loadbalancer.json",
			absent:  [][]string{{"spec", "healthCheckNodePort"}, {"spec", "clusterIP"}},
			present: map[string]interface{}{
				"spec|ipFamilies":            []interface{}{"IPv6"},
				"spec|ipFamilyPolicy":        "SingleStack",
				"spec|externalTrafficPolicy": "Local",
				"metadata|finalizers":        []interface{}{"service.kubernetes.io/load-balancer-cleanup"},
			},
		},
		{
			name:    "pod drops node, token volume, alias, generateName and controller ref",
			fixture: "pod.json",
			absent: [][]string{
				{"spec", "nodeName"}, {"spec", "serviceAccount"},
				{"metadata", "generateName"}, {"metadata", "ownerReferences"},
			},
			present: map[string]interface{}{
				"spec|serviceAccountName": "default",
				"spec|tolerations": []interface{}{map[string]interface{}{
					"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "web",
				}},
				"spec|volumes": []interface{}{map[string]interface{}{
					"configMap": map[string]interface{}{"defaultMode": int64(420), "name": "web-conf"},
					"name":      "conf",
				}},
			},
		},
		{
			name:    "pvc drops bound volume, binding annotations and protection finalizer",
			fixture: "pvc.json",
			absent:  [][]string{{"spec", "volumeName"}, {"metadata", "finalizers"}},
			present: map[string]interface{}{
				"metadata|annotations":  map[string]interface{}{"backup.example.com/schedule": "daily"},
				"spec|storageClassName": "standard",
			},
		},
		{
			name:    "service account drops generated token secret only",
			fixture: "serviceaccount.json",
			present: map[string]interface{}{
				"secrets":          []interface{}{map[string]interface{}{"name": "builder-ssh"}},
				"imagePullSecrets": []interface{}{map[string]interface{}{"name": "registry-creds"}},
			},
		},
		{
			name:    "namespace drops kubernetes finalizer and name label",
			fixture: "namespace.json",
			absent:  [][]string{{"spec"}, {"status"}},
			present: map[string]interface{}{
				"metadata|labels": map[string]interface{}{"team": "payments"},
			},
		},
		{
			name:    "job drops generated selector and labels",
			fixture: "job.json",
			absent: [][]string{
				{"spec", "selector"}, {"metadata", "labels"},
				{"spec", "template", "metadata", "labels"},
			},
			present: map[string]interface{}{
				"spec|backoffLimit":   int64(6),
				"spec|manualSelector": false,
			},
		},
		{
			name:    "custom resource keeps a non-controller owner reference",
			fixture: "certificate.json",
			absent:  [][]string{{"status"}, {"metadata", "generation"}},
			present: map[string]interface{}{
				"metadata|ownerReferences": []interface{}{map[string]interface{}{
					"apiVersion": "example.com/v1", "kind": "Bundle", "name": "shop",
					"uid": "5f4e3d2c-1b0a-4998-8776-655443322110",
				}},
				"spec|renewBeforePercentage": 12.5,
			},
		},
		{
			name:    "statefulset drops claim template status",
			fixture: "statefulset.json",
			absent:  [][]string{{"status"}, {"spec", "template", "metadata", "creationTimestamp"}},
			present: map[string]interface{}{
				"spec|volumeClaimTemplates": []interface{}{map[string]interface{}{
					"apiVersion": "v1", "kind": "PersistentVolumeClaim",
					"metadata": map[string]interface{}{"name": "data"},
					"spec": map[string]interface{}{
						"accessModes": []interface{}{"ReadWriteOnce"},
						"resources":   map[string]interface{}{"requests": map[string]interface{}{"storage": "10Gi"}},
						"volumeMode":  "Filesystem",
					},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustSanitize(t, loadObject(t, tt.fixture), Options{})
			for _, p := range tt.absent {
				if v, ok := field(got, p...); ok {
					t.Errorf("%s still present: %v", strings.Join(p, "."), v)
				}
			}
			for p, want := range tt.present {
				v, ok := field(got, strings.Split(p, "|")...)
				if !ok {
					t.Errorf("%s missing", p)
					continue
				}
				if !reflect.DeepEqual(v, want) {
					t.Errorf("%s = %#v, want %#v", p, v, want)
				}
			}
			for _, p := range [][]string{{"apiVersion"}, {"kind"}, {"metadata", "name"}} {
				if _, ok := field(got, p...); !ok {
					t.Errorf("%s missing", strings.Join(p, "."))
				}
			}
		})
	}
}

func TestSanitize_rules_userChoicesKept(t *testing.T) {
	tests := []struct {
		name   string
		object string
		path   []string
		want   interface{}
	}{
		{
			name: "job with manualSelector keeps its selector",
			object: `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","namespace":"n","uid":"u1"},
				"spec":{"manualSelector":true,"selector":{"matchLabels":{"controller-uid":"mine"}},
				"template":{"metadata":{"labels":{"controller-uid":"mine"}},"spec":{"containers":[{"name":"c","image":"i"}],"restartPolicy":"Never"}}}}`,
			path: []string{"spec", "template", "metadata", "labels"},
			want: map[string]interface{}{"controller-uid": "mine"},
		},
		{
			name: "job keeps a job-name label that differs from its name",
			object: `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","namespace":"n"},
				"spec":{"template":{"metadata":{"labels":{"job-name":"other","app":"x"}},"spec":{"containers":[{"name":"c","image":"i"}],"restartPolicy":"Never"}}}}`,
			path: []string{"spec", "template", "metadata", "labels"},
			want: map[string]interface{}{"job-name": "other", "app": "x"},
		},
		{
			name:   "service keeps prefer dual stack",
			object: `{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"n"},"spec":{"clusterIP":"10.0.0.1","ipFamilyPolicy":"PreferDualStack","ipFamilies":["IPv4"]}}`,
			path:   []string{"spec", "ipFamilyPolicy"},
			want:   "PreferDualStack",
		},
		{
			name:   "namespace keeps a user finalizer",
			object: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"},"spec":{"finalizers":["kubernetes","example.com/cleanup"]}}`,
			path:   []string{"spec", "finalizers"},
			want:   []interface{}{"example.com/cleanup"},
		},
		{
			name:   "pvc keeps the storage-class annotation",
			object: `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"p","namespace":"n","annotations":{"volume.beta.kubernetes.io/storage-class":"fast","pv.kubernetes.io/bind-completed":"yes"}},"spec":{}}`,
			path:   []string{"metadata", "annotations"},
			want:   map[string]interface{}{"volume.beta.kubernetes.io/storage-class": "fast"},
		},
		{
			name:   "pod keeps a toleration with other seconds",
			object: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n"},"spec":{"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":30}]}}`,
			path:   []string{"spec", "tolerations"},
			want: []interface{}{map[string]interface{}{
				"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": int64(30),
			}},
		},
		{
			name:   "pod keeps a user volume named like the token volume but not projected",
			object: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n"},"spec":{"volumes":[{"name":"kube-api-access-mine","emptyDir":{}}]}}`,
			path:   []string{"spec", "volumes"},
			want:   []interface{}{map[string]interface{}{"name": "kube-api-access-mine", "emptyDir": map[string]interface{}{}}},
		},
		{
			name:   "generateName stays when there is no name yet",
			object: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"cm-","namespace":"n"}}`,
			path:   []string{"metadata", "generateName"},
			want:   "cm-",
		},
		{
			name:   "a user finalizer stays, the deletion-propagation one goes",
			object: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"n","finalizers":["foregroundDeletion","example.com/keep"]}}`,
			path:   []string{"metadata", "finalizers"},
			want:   []interface{}{"example.com/keep"},
		},
		{
			name:   "a core-looking kind in another group gets no core rules",
			object: `{"apiVersion":"example.com/v1","kind":"Service","metadata":{"name":"s","namespace":"n"},"spec":{"clusterIP":"10.0.0.1"}}`,
			path:   []string{"spec", "clusterIP"},
			want:   "10.0.0.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustSanitize(t, fromJSON(t, tt.object), Options{})
			v, ok := field(got, tt.path...)
			if !ok {
				t.Fatalf("%s missing", strings.Join(tt.path, "."))
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Errorf("%s = %#v, want %#v", strings.Join(tt.path, "."), v, tt.want)
			}
		})
	}
}

func TestSanitize_input_notModified(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			in := loadObject(t, name+".json")
			before := in.DeepCopy()
			out := mustSanitize(t, in, Options{})
			if !reflect.DeepEqual(in.Object, before.Object) {
				t.Fatal("Sanitize modified its input")
			}
			// The copy shares nothing with the input.
			out.SetLabels(map[string]string{"changed": "yes"})
			if spec, ok := out.Object["spec"].(map[string]interface{}); ok {
				spec["mutated"] = true
			}
			if !reflect.DeepEqual(in.Object, before.Object) {
				t.Fatal("output shares memory with the input")
			}
		})
	}
}

func TestSanitize_idempotent_fixtures(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			once := mustSanitize(t, loadObject(t, name+".json"), Options{})
			twice := mustSanitize(t, once, Options{})
			if a, b := mustMarshal(t, once), mustMarshal(t, twice); !bytes.Equal(a, b) {
				t.Errorf("second pass changed the object\n--- once\n%s--- twice\n%s", a, b)
			}
		})
	}
}

func TestSanitize_errors_badInput(t *testing.T) {
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		opts Options
		want string
	}{
		{name: "nil object", obj: nil, want: "nil object"},
		{name: "nil map", obj: &unstructured.Unstructured{}, want: "nil object"},
		{
			name: "no kind",
			obj:  &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "metadata": map[string]interface{}{"name": "x"}}},
			want: "apiVersion and kind are required",
		},
		{
			name: "bad apiVersion",
			obj:  &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "a/b/c", "kind": "X"}},
			want: "a/b/c",
		},
		{
			name: "metadata not an object",
			obj:  &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}},
			want: "metadata: want an object",
		},
		{
			name: "value JSON cannot hold",
			obj: &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": "v1", "kind": "ConfigMap",
				"data": map[string]interface{}{"k": struct{}{}},
			}},
			want: "data: k: unsupported value of type struct {}",
		},
		{
			name: "unknown secret handling",
			obj:  &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap"}},
			opts: Options{Secrets: "Plain"},
			want: `unknown secret handling "Plain"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Sanitize(tt.obj, tt.opts)
			if err == nil {
				t.Fatalf("want error, got %v", out)
			}
			if out != nil {
				t.Errorf("want nil object with error, got %v", out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if errors.Is(err, ErrSkipped) {
				t.Errorf("bad input reported as skipped: %v", err)
			}
		})
	}
}
