package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Operation is an admission operation a rule records.
// +kubebuilder:validation:Enum=CREATE;UPDATE;DELETE
type Operation string

// Operations a rule can select.
const (
	// OperationCreate records creations.
	OperationCreate Operation = "CREATE"
	// OperationUpdate records updates, patches and subresource writes.
	OperationUpdate Operation = "UPDATE"
	// OperationDelete records deletions.
	OperationDelete Operation = "DELETE"
)

// SecretHandling says how the values of a recorded Secret reach Git.
// +kubebuilder:validation:Enum=Redact;Skip;Encrypt
type SecretHandling string

const (
	// SecretRedact writes the Secret with its keys and every value
	// replaced by a marker.
	SecretRedact SecretHandling = "Redact"
	// SecretSkip writes nothing for Secrets.
	SecretSkip SecretHandling = "Skip"
	// SecretEncrypt writes the Secret SOPS-encrypted (age) for the
	// recipients of the rule's `encryption`, or else of its GitTarget's.
	SecretEncrypt SecretHandling = "Encrypt"
)

// RuleEncryptionSpec overrides the GitTarget's recipients for one rule.
type RuleEncryptionSpec struct {
	// Age lists the age recipients of this rule's files.
	Age AgeEncryption `json:"age"`
}

// SecretFieldSelector names fields of a secret-shaped resource (a sealed or
// external secret kind, a credentials CRD) whose values are handled as a
// Secret's values.
type SecretFieldSelector struct {
	// APIGroup of the kind; "" is the core group.
	// +optional
	APIGroup string `json:"apiGroup,omitempty"`

	// Kind of the resource, e.g. `SealedSecret`.
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`

	// Paths are dotted field paths, e.g. `spec.encryptedData` or
	// `spec.auth.password`. Every value under a path is redacted (a
	// string becomes REDACTED, a number 0), skipped with the object, or
	// encrypted, as `secrets` says; policies and WASM modules always see
	// them redacted.
	// +kubebuilder:validation:MinItems=1
	Paths []string `json:"paths"`
}

// ResourceSelector selects resources by API group, version and plural
// resource name, as in RBAC rules.
type ResourceSelector struct {
	// APIGroups of the resources; "" is the core group.
	// +kubebuilder:default={""}
	// +optional
	APIGroups []string `json:"apiGroups,omitempty"`

	// APIVersions to record; empty means the version the API server
	// prefers for the group.
	// +optional
	APIVersions []string `json:"apiVersions,omitempty"`

	// Resources are plural resource names, e.g. `configmaps`,
	// `deployments`. Subresources are recorded as writes of their parent
	// (a `kubectl scale` is an UPDATE of the Deployment).
	// +kubebuilder:validation:MinItems=1
	Resources []string `json:"resources"`
}

// PolicyReference names the Rego policy that decides which selected changes
// are recorded.
type PolicyReference struct {
	// ConfigMapRef names a policy ConfigMap (label
	// `reverser.gitops-reverser.dev/policy=true`; every key ending in
	// .rego is a module) in the rule's namespace, or in the namespace of
	// the GitTarget for a ClusterWatchRule.
	// +optional
	ConfigMapRef *LocalObjectReference `json:"configMapRef,omitempty"`

	// Inline is a small Rego module written in the rule itself.
	// +optional
	Inline string `json:"inline,omitempty"`
}

// ModuleSource says where a WASM module comes from. Exactly one source is
// set, and the module's bytes must hash to SHA256.
type ModuleSource struct {
	// ConfigMapRef names a ConfigMap whose binaryData holds the module
	// (gzip-compressed when the key ends in .gz).
	// +optional
	ConfigMapRef *KeyReference `json:"configMapRef,omitempty"`

	// SecretRef names a Secret whose data holds the module.
	// +optional
	SecretRef *KeyReference `json:"secretRef,omitempty"`

	// URL is an https:// or oci:// reference to the module.
	// +optional
	URL string `json:"url,omitempty"`

	// SHA256 pins the module's uncompressed bytes (hex).
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`
}

// KeyReference names one key of a ConfigMap or Secret.
type KeyReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key inside the object.
	// +kubebuilder:default="module.wasm"
	// +optional
	Key string `json:"key,omitempty"`
}

// ModuleReference is one WASM module with the settings this rule gives it.
type ModuleReference struct {
	// Name identifies the module in conditions and metrics.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Source of the module.
	Source ModuleSource `json:"source"`

	// Settings are handed to the module as JSON with every call.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Settings *apiextensionsv1.JSON `json:"settings,omitempty"`
}

// RuleSpec is what WatchRule and ClusterWatchRule have in common.
type RuleSpec struct {
	// Resources the rule selects.
	// +kubebuilder:validation:MinItems=1
	Resources []ResourceSelector `json:"resources"`

	// Operations the rule records.
	// +kubebuilder:default={CREATE,UPDATE,DELETE}
	// +optional
	Operations []Operation `json:"operations,omitempty"`

	// LabelSelector restricts the rule to objects with matching labels.
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`

	// Policy is Rego that decides which selected changes are recorded. It
	// is compiled together with the default policies (policies/ of the
	// project: system writers, leader election, status-only updates), so
	// it adds `ignore` and `keep` rules to them; without one the defaults
	// alone decide.
	// +optional
	Policy *PolicyReference `json:"policy,omitempty"`

	// Sanitizers are WASM modules applied in order after the built-in
	// sanitizer.
	// +optional
	Sanitizers []ModuleReference `json:"sanitizers,omitempty"`

	// Layout is a WASM module that chooses each object's path; without
	// one the default layout is used.
	// +optional
	Layout *ModuleReference `json:"layout,omitempty"`

	// Secrets says how Secrets (and the SecretFields of secret-shaped
	// resources) reach Git: values redacted (the file still applies),
	// skipped, or encrypted with SOPS for age recipients (see
	// docs/secrets.md).
	// +kubebuilder:default=Redact
	// +optional
	Secrets SecretHandling `json:"secrets,omitempty"`

	// Encryption overrides the GitTarget's `encryption` recipients for
	// this rule's files when `secrets` is Encrypt.
	// +optional
	Encryption *RuleEncryptionSpec `json:"encryption,omitempty"`

	// SecretFields opts custom resources in to the handling of Secret
	// values, per kind and field path.
	// +optional
	SecretFields []SecretFieldSelector `json:"secretFields,omitempty"`
}

// WatchRuleSpec selects changes within the rule's own namespace.
type WatchRuleSpec struct {
	// TargetRef names a GitTarget in the rule's namespace.
	TargetRef LocalObjectReference `json:"targetRef"`

	RuleSpec `json:",inline"`
}

// NamespacedObjectReference names an object in a given namespace.
type NamespacedObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the object.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
}

// ClusterWatchRuleSpec selects changes across namespaces and of
// cluster-scoped resources.
type ClusterWatchRuleSpec struct {
	// TargetRef names a GitTarget.
	TargetRef NamespacedObjectReference `json:"targetRef"`

	// NamespaceSelector restricts namespaced resources to namespaces with
	// matching labels; empty selects every namespace. Cluster-scoped
	// resources are not affected by it.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	RuleSpec `json:",inline"`
}

// RuleStatus is the observed state of a rule.
type RuleStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Stalled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Resources are the resolved group/version/resources the rule
	// selects.
	// +optional
	Resources []string `json:"resources,omitempty"`

	// PolicyRevision is the sha256 of the Rego modules (defaults and the
	// rule's own) in force; it changes when an edited policy is loaded.
	// +optional
	PolicyRevision string `json:"policyRevision,omitempty"`
}

// WatchRule records changes of the selected resources in its own namespace
// to a GitTarget.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wr,categories=reverser
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WatchRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired rule.
	Spec WatchRuleSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status RuleStatus `json:"status,omitempty"`
}

// WatchRuleList is a list of WatchRules.
//
// +kubebuilder:object:root=true
type WatchRuleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WatchRules.
	Items []WatchRule `json:"items"`
}

// ClusterWatchRule records changes of the selected resources across
// namespaces, and of cluster-scoped resources, to a GitTarget.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cwr,categories=reverser
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterWatchRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired rule.
	Spec ClusterWatchRuleSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status RuleStatus `json:"status,omitempty"`
}

// ClusterWatchRuleList is a list of ClusterWatchRules.
//
// +kubebuilder:object:root=true
type ClusterWatchRuleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ClusterWatchRules.
	Items []ClusterWatchRule `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WatchRule{}, &WatchRuleList{}, &ClusterWatchRule{}, &ClusterWatchRuleList{})
}

// GetConditions returns the status conditions.
func (r *WatchRule) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions replaces the status conditions.
func (r *WatchRule) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }

// GetConditions returns the status conditions.
func (r *ClusterWatchRule) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions replaces the status conditions.
func (r *ClusterWatchRule) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }
