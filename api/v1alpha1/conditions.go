package v1alpha1

// Condition types shared by every kind of this API.
const (
	// ReadyCondition is True when the object is fully usable.
	ReadyCondition = "Ready"
	// StalledCondition is True when the object cannot progress without a
	// change by the user (a wrong URL, a missing resource).
	StalledCondition = "Stalled"
)

// Reasons of GitTarget conditions. Event reasons equal condition reasons.
const (
	// ReasonRemoteReachable: the remote answered and the branch exists.
	ReasonRemoteReachable = "RemoteReachable"
	// ReasonSecretNotFound: the credentials or the signing Secret does
	// not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInvalidSecret: the Secret lacks keys the URL's scheme needs.
	ReasonInvalidSecret = "InvalidSecret"
	// ReasonInvalidSigningKey: the signing Secret lacks `signing.key`, or
	// the key cannot be read, decrypted or used for signing.
	ReasonInvalidSigningKey = "InvalidSigningKey"
	// ReasonAuthenticationFailed: the remote refused the credentials.
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonRepositoryNotFound: no repository answers at the URL.
	ReasonRepositoryNotFound = "RepositoryNotFound"
	// ReasonBranchNotFound: the repository lacks the branch and
	// createBranch is false.
	ReasonBranchNotFound = "BranchNotFound"
	// ReasonBranchCreated: the branch was missing and was created.
	ReasonBranchCreated = "BranchCreated"
	// ReasonRemoteUnreachable: the remote could not be reached (network,
	// TLS, host key); retried with backoff.
	ReasonRemoteUnreachable = "RemoteUnreachable"
	// ReasonInvalidURL: the URL cannot be parsed or uses an unsupported
	// scheme.
	ReasonInvalidURL = "InvalidURL"
)

// EncryptionCondition is set on a GitTarget with spec.encryption: True
// when its age recipients are usable, False (InvalidRecipient) when one
// is missing or malformed. It does not affect Ready.
const EncryptionCondition = "Encryption"

// Reasons of the GitTarget Encryption condition.
const (
	// ReasonRecipientsValid: every age recipient is an X25519 public key.
	ReasonRecipientsValid = "RecipientsValid"
	// ReasonInvalidRecipient: no recipient, or one is not an age X25519
	// public key; rules that encrypt write no Secret meanwhile.
	ReasonInvalidRecipient = "InvalidRecipient"
)

// Reasons of WatchRule and ClusterWatchRule conditions.
const (
	// ReasonRuleActive: the rule is indexed and selects changes.
	ReasonRuleActive = "RuleActive"
	// ReasonResourceNotFound: a resource the rule names is not served by
	// the API server.
	ReasonResourceNotFound = "ResourceNotFound"
	// ReasonPartiallyActive: the rule records the resources that resolve
	// (Ready is True) while others it names are not served yet; the
	// message names them, and a CRD that serves one is picked up when it
	// is established.
	ReasonPartiallyActive = "PartiallyActive"
	// ReasonTargetNotFound: the GitTarget the rule references is missing.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonTargetNotReady: the referenced GitTarget exists but is not
	// Ready.
	ReasonTargetNotReady = "TargetNotReady"
	// ReasonInvalidSelector: a label or namespace selector is malformed.
	ReasonInvalidSelector = "InvalidSelector"
	// ReasonPolicyNotFound: the policy ConfigMap the rule references is
	// missing.
	ReasonPolicyNotFound = "PolicyNotFound"
	// ReasonPolicyInvalid: the rule's Rego policy does not compile; the
	// message carries the compiler's file:line:col messages.
	ReasonPolicyInvalid = "PolicyInvalid"
	// ReasonPolicyEvaluationFailed: the rule's policy failed to evaluate
	// on a change, which was recorded anyway.
	ReasonPolicyEvaluationFailed = "PolicyEvaluationFailed"
	// ReasonModuleInvalid: a WASM module could not be fetched or loaded.
	ReasonModuleInvalid = "ModuleInvalid"
	// ReasonSanitizerFailed: a WASM sanitizer failed on a change, which
	// was not written.
	ReasonSanitizerFailed = "SanitizerFailed"
	// ReasonLayoutFailed: a WASM layout failed or chose a path that was
	// refused; the change was not written.
	ReasonLayoutFailed = "LayoutFailed"
	// ReasonEncryptionFailed: a Secret (or secret-shaped resource) of a
	// rule with `secrets: Encrypt` could not be encrypted (no recipient,
	// a malformed recipient, no fingerprint key); it was not written, in
	// plain text or otherwise, and its file stays as it was.
	ReasonEncryptionFailed = "EncryptionFailed"
)

// PolicyLabel marks ConfigMaps that hold Rego policies; each key ending in
// .rego is one module.
const PolicyLabel = "reverser.gitops-reverser.dev/policy"

// SyncedCondition is True on a GitTarget when every change recorded for it
// is committed and pushed; False while changes wait (the message counts
// them and says why).
const SyncedCondition = "Synced"

// Reasons of the GitTarget Synced condition.
const (
	// ReasonSynced: nothing waits; the remote has every recorded change.
	ReasonSynced = "Synced"
	// ReasonBacklog: changes wait for their author session to close or for
	// the next push; normal during a burst.
	ReasonBacklog = "Backlog"
	// ReasonCommitFailed: an author session could not be committed (e.g. a
	// file where a directory is needed); it is kept and retried.
	ReasonCommitFailed = "CommitFailed"
	// ReasonPushFailed: the remote could not be reached or refused the
	// push; commits wait in the local clone and the push is retried.
	ReasonPushFailed = "PushFailed"
	// ReasonTargetUnavailable: the GitTarget or its Secret could not be
	// read; changes already captured wait.
	ReasonTargetUnavailable = "TargetUnavailable"
)
