package transform

import (
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	secretKind = schema.GroupKind{Kind: "Secret"}

	// kindRules remove the fields that the API server, an admission
	// plugin or a controller sets for one kind. Fields that merely hold a
	// default (a Deployment's strategy, a Service's sessionAffinity) stay:
	// they are valid input and a user may have chosen them.
	kindRules = map[schema.GroupKind]func(obj map[string]interface{}){
		{Kind: "Service"}:                    cleanService,
		{Kind: "Pod"}:                        cleanPod,
		{Kind: "PersistentVolumeClaim"}:      cleanPersistentVolumeClaim,
		{Kind: "PersistentVolume"}:           cleanPersistentVolume,
		{Kind: "ServiceAccount"}:             cleanServiceAccount,
		{Kind: "Namespace"}:                  cleanNamespace,
		{Group: "apps", Kind: "StatefulSet"}: cleanStatefulSet,
		{Group: "batch", Kind: "Job"}:        cleanJob,
	}
)

// cleanService drops what the API server allocates: cluster IPs (except
// "None", which makes a Service headless and is always user input), the
// health check node port, and the single-stack IPv4 family that it fills
// in when nothing was asked for. Node ports stay: an allocated port cannot
// be told from a chosen one, and dropping a chosen one would change the
// Service.
func cleanService(obj map[string]interface{}) {
	spec := nestedMap(obj, "spec")
	if spec == nil {
		return
	}
	if !isHeadless(spec) {
		delete(spec, "clusterIP")
		delete(spec, "clusterIPs")
	}
	delete(spec, "healthCheckNodePort")

	policy, hasPolicy := spec["ipFamilyPolicy"].(string)
	families, hasFamilies := spec["ipFamilies"].([]interface{})
	policyDefault := !hasPolicy || policy == "SingleStack"
	familiesDefault := !hasFamilies || (len(families) == 1 && families[0] == "IPv4")
	if policyDefault && familiesDefault {
		delete(spec, "ipFamilyPolicy")
		delete(spec, "ipFamilies")
	}
}

func isHeadless(spec map[string]interface{}) bool {
	if ip, _ := spec["clusterIP"].(string); ip == "None" {
		return true
	}
	ips, _ := spec["clusterIPs"].([]interface{})
	return len(ips) > 0 && ips[0] == "None"
}

// serviceAccountVolumePrefix names the projected token volume that the
// ServiceAccount admission plugin adds to every pod.
const serviceAccountVolumePrefix = "kube-api-access-"

// cleanPod drops the scheduler's node, the service account token volume
// and its mounts, the deprecated serviceAccount alias, and the not-ready /
// unreachable tolerations that the DefaultTolerationSeconds admission
// plugin adds.
func cleanPod(obj map[string]interface{}) {
	spec := nestedMap(obj, "spec")
	if spec == nil {
		return
	}
	delete(spec, "nodeName")
	if sa, ok := spec["serviceAccount"].(string); ok && sa == spec["serviceAccountName"] {
		delete(spec, "serviceAccount")
	}

	injected := map[string]bool{}
	filterList(spec, "volumes", func(v interface{}) bool {
		vol, ok := v.(map[string]interface{})
		if !ok {
			return true
		}
		name, _ := vol["name"].(string)
		_, projected := vol["projected"]
		if projected && strings.HasPrefix(name, serviceAccountVolumePrefix) {
			injected[name] = true
			return false
		}
		return true
	})
	if len(injected) > 0 {
		for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
			containers, _ := spec[list].([]interface{})
			for _, c := range containers {
				filterList(asMap(c), "volumeMounts", func(v interface{}) bool {
					name, _ := asMap(v)["name"].(string)
					return !injected[name]
				})
			}
		}
	}

	filterList(spec, "tolerations", func(v interface{}) bool {
		return !isDefaultToleration(asMap(v))
	})
}

func isDefaultToleration(t map[string]interface{}) bool {
	if t == nil {
		return false
	}
	key, _ := t["key"].(string)
	if key != "node.kubernetes.io/not-ready" && key != "node.kubernetes.io/unreachable" {
		return false
	}
	seconds, ok := asInt64(t["tolerationSeconds"])
	return ok && seconds == 300 && t["operator"] == "Exists" && t["effect"] == "NoExecute"
}

// storageAnnotationPrefixes are the prefixes of the annotations that the
// PV controller and external provisioners set on claims and volumes.
var storageAnnotationPrefixes = []string{
	"pv.kubernetes.io/",
	"volume.kubernetes.io/",
	"volume.beta.kubernetes.io/",
}

// userStorageAnnotation is the one annotation under those prefixes that a
// user writes: the deprecated way to pick a storage class.
const userStorageAnnotation = "volume.beta.kubernetes.io/storage-class"

// cleanPersistentVolumeClaim drops the bound volume's name, the binding and
// provisioning annotations, and the pvc-protection finalizer.
func cleanPersistentVolumeClaim(obj map[string]interface{}) {
	if spec := nestedMap(obj, "spec"); spec != nil {
		delete(spec, "volumeName")
	}
	dropStorageAnnotations(obj)
	dropFinalizer(obj, "kubernetes.io/pvc-protection")
}

// cleanPersistentVolume drops the bound claim's UID and resourceVersion
// (the claim is still named), the binding annotations and the
// pv-protection finalizer.
func cleanPersistentVolume(obj map[string]interface{}) {
	if ref := nestedMap(obj, "spec", "claimRef"); ref != nil {
		delete(ref, "uid")
		delete(ref, "resourceVersion")
	}
	dropStorageAnnotations(obj)
	dropFinalizer(obj, "kubernetes.io/pv-protection")
}

func dropStorageAnnotations(obj map[string]interface{}) {
	ann := nestedMap(obj, "metadata", "annotations")
	for k := range ann {
		if k == userStorageAnnotation {
			continue
		}
		for _, p := range storageAnnotationPrefixes {
			if strings.HasPrefix(k, p) {
				delete(ann, k)
				break
			}
		}
	}
}

func dropFinalizer(obj map[string]interface{}, finalizer string) {
	filterList(nestedMap(obj, "metadata"), "finalizers", func(v interface{}) bool {
		return v != finalizer
	})
}

// cleanServiceAccount drops the `<name>-token-*` Secrets that clusters
// before 1.24 generate for every service account.
func cleanServiceAccount(obj map[string]interface{}) {
	name, _ := nestedMap(obj, "metadata")["name"].(string)
	if name == "" {
		return
	}
	prefix := name + "-token-"
	filterList(obj, "secrets", func(v interface{}) bool {
		ref, _ := asMap(v)["name"].(string)
		return !strings.HasPrefix(ref, prefix)
	})
}

// cleanNamespace drops the `kubernetes` finalizer that the API server puts
// on every namespace and the immutable `kubernetes.io/metadata.name` label.
func cleanNamespace(obj map[string]interface{}) {
	if spec := nestedMap(obj, "spec"); spec != nil {
		filterList(spec, "finalizers", func(v interface{}) bool {
			return v != "kubernetes"
		})
		if len(spec) == 0 {
			delete(obj, "spec")
		}
	}
	delete(nestedMap(obj, "metadata", "labels"), "kubernetes.io/metadata.name")
}

// cleanStatefulSet drops the status and null timestamp that the API server
// writes into each volume claim template.
func cleanStatefulSet(obj map[string]interface{}) {
	templates, _ := nestedMap(obj, "spec")["volumeClaimTemplates"].([]interface{})
	for _, t := range templates {
		m := asMap(t)
		if m == nil {
			continue
		}
		delete(m, "status")
		dropNullTimestamp(nestedMap(m, "metadata"))
	}
}

// Job labels that the API server generates when manualSelector is not set.
const (
	jobControllerUIDLabel       = "batch.kubernetes.io/controller-uid"
	jobLegacyControllerUIDLabel = "controller-uid"
	jobNameLabel                = "batch.kubernetes.io/job-name"
	jobLegacyNameLabel          = "job-name"
)

// cleanJob drops the selector and the labels that the API server generates
// for a Job without `manualSelector: true`; it generates them again, with
// the new UID, when the file is applied. The Job copies its template's
// labels into its own when it has none, so both places are cleaned.
func cleanJob(obj map[string]interface{}) {
	spec := nestedMap(obj, "spec")
	if spec == nil {
		return
	}
	if manual, _ := spec["manualSelector"].(bool); manual {
		return
	}
	delete(spec, "selector")
	name, _ := nestedMap(obj, "metadata")["name"].(string)
	for _, labels := range []map[string]interface{}{
		nestedMap(obj, "metadata", "labels"),
		nestedMap(spec, "template", "metadata", "labels"),
	} {
		if labels == nil {
			continue
		}
		delete(labels, jobControllerUIDLabel)
		delete(labels, jobLegacyControllerUIDLabel)
		for _, k := range []string{jobNameLabel, jobLegacyNameLabel} {
			if labels[k] == name {
				delete(labels, k)
			}
		}
	}
	if tm := nestedMap(spec, "template", "metadata"); tm != nil {
		if labels, ok := tm["labels"].(map[string]interface{}); ok && len(labels) == 0 {
			delete(tm, "labels")
		}
		if len(tm) == 0 {
			delete(nestedMap(spec, "template"), "metadata")
		}
	}
}

// asMap returns v as an object, or nil. Indexing a nil map is safe, which
// keeps the rules above free of nested type checks.
func asMap(v interface{}) map[string]interface{} {
	m, _ := v.(map[string]interface{})
	return m
}

func asInt64(v interface{}) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		return int64(n), n == float64(int64(n))
	default:
		return 0, false
	}
}
