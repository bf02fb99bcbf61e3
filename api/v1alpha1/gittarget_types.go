package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GitTargetSpec says where recorded changes are written: a remote
// repository, a branch, a folder inside it, the credentials and identity to
// use, and how often to push, pull and close batches.
type GitTargetSpec struct {
	// URL of the remote repository: https://, http://, ssh:// or
	// scp-like user@host:path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^(https?://|ssh://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:|file://)`
	URL string `json:"url"`

	// Branch to commit to.
	// +kubebuilder:default=main
	// +kubebuilder:validation:MinLength=1
	// +optional
	Branch string `json:"branch,omitempty"`

	// CreateBranch creates Branch on the remote, from the default branch
	// (or as an empty root commit in an empty repository), when it is
	// missing. When false a missing branch is reported as BranchNotFound.
	// +optional
	CreateBranch bool `json:"createBranch,omitempty"`

	// BasePath is the folder inside the repository that holds the
	// recorded objects; empty means the repository root.
	// +kubebuilder:validation:Pattern=`^$|^[^/].*$`
	// +optional
	BasePath string `json:"basePath,omitempty"`

	// SecretRef names a Secret in the GitTarget's namespace with the
	// credentials. HTTPS: keys `username` and `password`, or `token`
	// (sent as basic auth with username `git` unless `username` is set).
	// SSH: key `identity` (a PEM private key), optional `password` for an
	// encrypted key, and `known_hosts` (required: host keys are always
	// verified).
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// Signing signs every commit the operator makes (recorded changes,
	// reconcile commits, commits replayed after a rejected push, a branch's
	// first empty commit) with a key from a Secret, so that a reviewer can
	// check with `git verify-commit` that history came from the operator.
	// Without it commits are unsigned.
	// +optional
	Signing *SigningSpec `json:"signing,omitempty"`

	// Encryption holds the age recipients that rules with `secrets:
	// Encrypt` encrypt Secrets for (and the fields of secret-shaped
	// resources they name), in the SOPS format that `sops -d` and Flux's
	// kustomize-controller decrypt. Only public keys: the identities that
	// decrypt never enter the operator. See docs/secrets.md.
	// +optional
	Encryption *EncryptionSpec `json:"encryption,omitempty"`

	// Commit sets the identities and message of the commits.
	// +kubebuilder:default={}
	// +optional
	Commit CommitSpec `json:"commit,omitempty"`

	// Sync sets when the writer pushes to and pulls from the remote.
	// +kubebuilder:default={}
	// +optional
	Sync SyncSpec `json:"sync,omitempty"`

	// Batching sets how one author's burst of changes becomes one commit.
	// +kubebuilder:default={}
	// +optional
	Batching BatchingSpec `json:"batching,omitempty"`

	// CheckInterval is how often the remote is checked again while
	// nothing else changes.
	// +kubebuilder:default="5m"
	// +optional
	CheckInterval metav1.Duration `json:"checkInterval,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// SigningSpec names the Secret that holds the commit signing key.
type SigningSpec struct {
	// SecretRef names a Secret in the GitTarget's namespace (it may be the
	// one of spec.secretRef) with the key `signing.key`: an armored
	// OpenPGP private key (-----BEGIN PGP PRIVATE KEY BLOCK-----) or an
	// SSH private key (-----BEGIN OPENSSH PRIVATE KEY-----, or PEM RSA/EC),
	// and `signing.passphrase` when that key is encrypted. The format is
	// detected from the key; SSH signatures use git's namespace "git".
	SecretRef LocalObjectReference `json:"secretRef"`
}

// EncryptionSpec says who can decrypt the Secrets written to a target.
type EncryptionSpec struct {
	// Age lists the age recipients.
	Age AgeEncryption `json:"age"`

	// SopsConfig writes a `.sops.yaml` at the base path (with the target's
	// next reconcile) with a creation rule for these recipients and the
	// encrypted regex, so that `sops edit` or `sops updatekeys` of a
	// recorded file uses them.
	// +optional
	SopsConfig bool `json:"sopsConfig,omitempty"`
}

// AgeEncryption lists age recipients.
type AgeEncryption struct {
	// Recipients are age X25519 public keys (`age1...`, as
	// `age-keygen -y` prints them). Each one can decrypt every encrypted
	// file. A missing or malformed recipient writes no Secret at all: the
	// rule's Ready condition says EncryptionFailed.
	// +optional
	Recipients []string `json:"recipients,omitempty"`
}

// CommitSpec sets who commits and how a commit message reads.
type CommitSpec struct {
	// CommitterName is the committer of every commit.
	// +kubebuilder:default="gitops-reverser"
	// +optional
	CommitterName string `json:"committerName,omitempty"`

	// CommitterEmail is the committer's e-mail address.
	// +kubebuilder:default="gitops-reverser@cluster.local"
	// +optional
	CommitterEmail string `json:"committerEmail,omitempty"`

	// AuthorEmailDomain forms the author e-mail of a Kubernetes user who
	// has no entry in AuthorMap: <username>@<domain>.
	// +kubebuilder:default="cluster.local"
	// +optional
	AuthorEmailDomain string `json:"authorEmailDomain,omitempty"`

	// AuthorMap maps Kubernetes usernames to Git author identities.
	// +optional
	AuthorMap []AuthorMapping `json:"authorMap,omitempty"`

	// MessageTemplate is a Go text/template for the commit subject and
	// body; trailers are always appended.
	// +optional
	MessageTemplate string `json:"messageTemplate,omitempty"`
}

// AuthorMapping maps one Kubernetes username to a Git identity.
type AuthorMapping struct {
	// Username as the API server authenticates it, e.g.
	// `alice@example.com` or `system:serviceaccount:ci:deployer`.
	// +kubebuilder:validation:MinLength=1
	Username string `json:"username"`
	// Name is the Git author name.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Email is the Git author e-mail.
	// +kubebuilder:validation:MinLength=1
	Email string `json:"email"`
}

// SyncSpec sets the push/pull timeline of the Git writer: it pulls when the
// first change arrives, then pushes and pulls every PushInterval or after
// PushAfterCommits commits, whichever comes first.
type SyncSpec struct {
	// PushInterval is the longest time a local commit waits before it is
	// pushed.
	// +kubebuilder:default="10s"
	// +optional
	PushInterval metav1.Duration `json:"pushInterval,omitempty"`

	// PushAfterCommits pushes at once when this many commits are waiting.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +optional
	PushAfterCommits int32 `json:"pushAfterCommits,omitempty"`

	// PullInterval is how often the remote is fetched while idle, so that
	// human commits are picked up before ours are written on top.
	// +kubebuilder:default="1m"
	// +optional
	PullInterval metav1.Duration `json:"pullInterval,omitempty"`
}

// BatchingSpec sets when an author session closes into one commit.
type BatchingSpec struct {
	// IdleTimeout closes a session after this long without a change by
	// its author.
	// +kubebuilder:default="5s"
	// +optional
	IdleTimeout metav1.Duration `json:"idleTimeout,omitempty"`

	// MaxChanges closes a session when it holds this many changes.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxChanges int32 `json:"maxChanges,omitempty"`

	// MaxAge closes a session this long after its first change.
	// +kubebuilder:default="1m"
	// +optional
	MaxAge metav1.Duration `json:"maxAge,omitempty"`
}

// GitTargetStatus is the observed state of a GitTarget.
type GitTargetStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Stalled, Synced, and Encryption with
	// spec.encryption.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Head is the commit the branch pointed at on the last check.
	// +optional
	Head string `json:"head,omitempty"`

	// LastCheckTime is when the remote was last checked.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// SecretResourceVersion is the resourceVersion of the Secret used in
	// the last check (followed by ",<resourceVersion>" of the signing
	// Secret when that is another Secret), so a change of either
	// triggers a new check.
	// +optional
	SecretResourceVersion string `json:"secretResourceVersion,omitempty"`
}

// GitTarget is a Git repository and branch that recorded changes are
// written to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gt,categories=reverser
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Branch",type=string,JSONPath=`.spec.branch`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GitTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired target.
	Spec GitTargetSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status GitTargetStatus `json:"status,omitempty"`
}

// GitTargetList is a list of GitTargets.
//
// +kubebuilder:object:root=true
type GitTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the GitTargets.
	Items []GitTarget `json:"items"`
}

// GetConditions returns the status conditions.
func (t *GitTarget) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the status conditions.
func (t *GitTarget) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }

func init() {
	SchemeBuilder.Register(&GitTarget{}, &GitTargetList{})
}
