// Package sops writes Kubernetes objects as SOPS-encrypted YAML for age
// recipients, in the format that the `sops` CLI (`sops -d`) and Flux's
// kustomize-controller decrypt. It receives an object's plaintext YAML (as
// engine/transform.Marshal renders it), the recipients' public keys and a
// fingerprint key, and hands on the encrypted file.
//
// The format follows getsops/sops v3 (stores/yaml, aes, age):
//   - every scalar under a path with a component matching EncryptedRegex
//     (by default `^(data|stringData)$`) is replaced by
//     ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<str|int|float|bool|time>],
//     AES-256-GCM with a 32-byte nonce and the value's key path joined by
//     ":" plus a trailing ":" as additional data; an empty string stays empty;
//   - the MAC is SHA-512 over the bytes of every non-null scalar in document
//     order (encrypted or not), upper-case hex, encrypted the same way with
//     the `lastmodified` timestamp (RFC 3339) as additional data;
//   - the 32-byte data key is encrypted for each recipient separately into an
//     armored age file (`sops.age[].enc`);
//   - `sops.version`, `sops.lastmodified`, `sops.mac`, `sops.encrypted_regex`.
//
// The cryptography is the standard library's (crypto/aes, crypto/cipher,
// crypto/sha512, crypto/hmac) and filippo.io/age; getsops/sops itself is
// not imported because it pulls every cloud KMS SDK into the operator.
// The e2e suite test/e2e/secrets decrypts the output with the real, pinned
// `sops` CLI.
//
// No churn: encryption is randomised (a new data key and nonces each time),
// so Seal also writes an HMAC-SHA256 of the plaintext, the recipients and
// the regex under a key only the operator holds (`sops.gitops_reverser_hmac`,
// a field sops and Flux ignore), and returns the previous file unchanged
// when its HMAC matches. No plaintext is kept anywhere, and the decryption
// keys never enter the operator: it only ever holds public keys.
package sops
