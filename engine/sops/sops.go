package sops

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

// DefaultEncryptedRegex selects the values of a Secret's `data` and
// `stringData`: the regex Flux's documentation recommends, so metadata
// stays readable in Git.
const DefaultEncryptedRegex = `^(data|stringData)$`

// Version is the sops file format version written into `sops.version`.
// Every sops 3.x release and Flux's kustomize-controller read it.
const Version = "3.9.0"

// FingerprintField is the field of the `sops` block that holds the HMAC of
// the plaintext (see Seal). sops and Flux ignore fields they do not know.
const FingerprintField = "gitops_reverser_hmac"

// nonceSize is sops's GCM nonce size (aes/cipher.go).
const nonceSize = 32

// fingerprintPrefix names the HMAC's algorithm and input layout, so that a
// later layout never matches an older file by accident.
const fingerprintPrefix = "hmac-sha256-v1:"

// ErrNoRecipients says that encryption was asked for without any age
// recipient: nothing can be written that someone can decrypt.
var ErrNoRecipients = errors.New("no age recipient configured")

// Options configure Seal.
type Options struct {
	// Recipients are age X25519 public keys (age1...); every one can
	// decrypt the file.
	Recipients []string
	// EncryptedRegex selects the values to encrypt by key name, as sops's
	// `encrypted_regex`; empty means DefaultEncryptedRegex.
	EncryptedRegex string
	// FingerprintKey keys the plaintext HMAC; it must stay secret (with
	// it, a guessed value can be confirmed against Git). At least 16
	// bytes.
	FingerprintKey []byte
	// Now is the file's `lastmodified`; zero means time.Now.
	Now time.Time
}

// ParseRecipients parses age X25519 recipients. The error names the
// position and the problem; recipients are public keys, so quoting one is
// safe.
func ParseRecipients(in []string) ([]age.Recipient, error) {
	if len(in) == 0 {
		return nil, ErrNoRecipients
	}
	out := make([]age.Recipient, 0, len(in))
	for i, s := range in {
		r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("age recipient %d (%q) is not an age X25519 public key (age1...): %w", i+1, shorten(s), err)
		}
		out = append(out, r)
	}
	return out, nil
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Fingerprint returns the keyed HMAC that Seal stores for plain under
// opts: the same plaintext, recipients and regex under the same key give
// the same fingerprint, anything else a different one.
func Fingerprint(plain []byte, opts Options) string {
	recipients := make([]string, len(opts.Recipients))
	for i, r := range opts.Recipients {
		recipients[i] = strings.TrimSpace(r)
	}
	sort.Strings(recipients)
	m := hmac.New(sha256.New, opts.FingerprintKey)
	m.Write([]byte(opts.regex()))
	m.Write([]byte{0})
	m.Write([]byte(strings.Join(recipients, "\n")))
	m.Write([]byte{0})
	m.Write(plain)
	return fingerprintPrefix + hex.EncodeToString(m.Sum(nil))
}

func (o Options) regex() string {
	if o.EncryptedRegex == "" {
		return DefaultEncryptedRegex
	}
	return o.EncryptedRegex
}

// Seal returns plain (one YAML object) encrypted for opts.Recipients in the
// sops format. When prior (the file as it is now, or nil) was sealed from
// the same plaintext, recipients and regex under the same fingerprint key,
// Seal returns prior itself and reused is true: an unchanged object makes
// no new commit although encryption is randomised.
func Seal(plain, prior []byte, opts Options) (out []byte, reused bool, err error) {
	if len(opts.FingerprintKey) < 16 {
		return nil, false, errors.New("sops: the fingerprint key is missing or shorter than 16 bytes")
	}
	recipients, err := ParseRecipients(opts.Recipients)
	if err != nil {
		return nil, false, err
	}
	re, err := regexp.Compile(opts.regex())
	if err != nil {
		return nil, false, fmt.Errorf("sops: encrypted regex: %w", err)
	}
	fp := Fingerprint(plain, opts)
	if old, ok := PriorFingerprint(prior); ok && hmac.Equal([]byte(old), []byte(fp)) {
		return prior, true, nil
	}
	out, err = seal(plain, recipients, opts, re, fp)
	if err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// PriorFingerprint returns the fingerprint stored in a sealed file, and
// false when file is not one (empty, not YAML, no sops block, no
// fingerprint: a file someone re-encrypted with sops).
func PriorFingerprint(file []byte) (string, bool) {
	if len(file) == 0 {
		return "", false
	}
	var doc struct {
		Sops map[string]any `yaml:"sops"`
	}
	if err := yaml.Unmarshal(file, &doc); err != nil || doc.Sops == nil {
		return "", false
	}
	fp, ok := doc.Sops[FingerprintField].(string)
	return fp, ok && strings.HasPrefix(fp, fingerprintPrefix)
}

func seal(plain []byte, recipients []age.Recipient, opts Options, re *regexp.Regexp, fp string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(plain, &doc); err != nil {
		// yaml's message may quote the document: say only that it failed.
		return nil, errors.New("sops: the object is not valid YAML")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("sops: the object is not a YAML mapping")
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "sops" {
			return nil, errors.New("sops: the object has a top-level field `sops`")
		}
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("sops: generating the data key: %w", err)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, fmt.Errorf("sops: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return nil, fmt.Errorf("sops: %w", err)
	}
	w := walker{gcm: gcm, re: re, mac: sha512.New()}
	if err := w.mapping(root, nil); err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	lastModified := now.UTC().Format(time.RFC3339)
	mac, err := encryptValue(gcm, fmt.Sprintf("%X", w.mac.Sum(nil)), lastModified)
	if err != nil {
		return nil, err
	}
	ageNodes := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, r := range recipients {
		enc, err := wrapKey(dataKey, r)
		if err != nil {
			return nil, fmt.Errorf("sops: encrypting the data key for age recipient %d: %w", i+1, err)
		}
		ageNodes.Content = append(ageNodes.Content, mappingOf(
			"recipient", str(strings.TrimSpace(opts.Recipients[i])),
			"enc", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: enc, Style: yaml.LiteralStyle},
		))
	}
	meta := mappingOf(
		"age", ageNodes,
		"lastmodified", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: lastModified, Style: yaml.DoubleQuotedStyle},
		"mac", str(mac),
		"encrypted_regex", str(opts.regex()),
		"version", str(Version),
		FingerprintField, str(fp),
	)
	root.Content = append(root.Content, str("sops"), meta)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("sops: writing the file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("sops: writing the file: %w", err)
	}
	return buf.Bytes(), nil
}

// walker encrypts the selected scalars of a document in place and hashes
// every scalar into the MAC, in document order, as sops's Tree.Encrypt.
type walker struct {
	gcm cipher.AEAD
	re  *regexp.Regexp
	mac hash.Hash
}

func (w *walker) node(n *yaml.Node, path []string) error {
	switch n.Kind {
	case yaml.MappingNode:
		return w.mapping(n, path)
	case yaml.SequenceNode:
		// sops gives list items their list's path (no index).
		for _, item := range n.Content {
			if err := w.node(item, path); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		return errors.New("sops: YAML aliases are not supported")
	case yaml.ScalarNode:
		return w.scalar(n, path)
	default:
		return fmt.Errorf("sops: unexpected YAML node kind %d", n.Kind)
	}
}

func (w *walker) mapping(n *yaml.Node, path []string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		var key any
		if err := n.Content[i].Decode(&key); err != nil {
			return errors.New("sops: a key cannot be decoded")
		}
		k, ok := key.(string)
		if !ok {
			return fmt.Errorf("sops: a key of type %T: only string keys are supported", key)
		}
		// A fresh slice per key: siblings must not share a backing array.
		sub := append(append(make([]string, 0, len(path)+1), path...), k)
		if err := w.node(n.Content[i+1], sub); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) scalar(n *yaml.Node, path []string) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return errors.New("sops: a value cannot be decoded")
	}
	if v == nil {
		return nil // sops leaves nulls alone and keeps them out of the MAC
	}
	b, typ, err := toBytes(v)
	if err != nil {
		return err
	}
	w.mac.Write(b)
	if !w.selected(path) {
		return nil
	}
	enc := ""
	if len(b) > 0 || typ != "str" {
		enc, err = encryptTyped(w.gcm, b, typ, strings.Join(path, ":")+":")
		if err != nil {
			return err
		}
	}
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: enc}
	if enc == "" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return nil
}

// selected is sops's shouldBeEncrypted for encrypted_regex: any component
// of the path matches.
func (w *walker) selected(path []string) bool {
	for _, p := range path {
		if w.re.MatchString(p) {
			return true
		}
	}
	return false
}

// toBytes is sops's ToBytes with the type name its cipher writes.
func toBytes(v any) ([]byte, string, error) {
	switch t := v.(type) {
	case string:
		return []byte(t), "str", nil
	case int:
		return []byte(strconv.Itoa(t)), "int", nil
	case float64:
		return []byte(strconv.FormatFloat(t, 'f', -1, 64)), "float", nil
	case bool:
		if t {
			return []byte("True"), "bool", nil
		}
		return []byte("False"), "bool", nil
	case time.Time:
		b, err := t.MarshalText()
		if err != nil {
			return nil, "", fmt.Errorf("sops: a timestamp: %w", err)
		}
		return b, "time", nil
	default:
		return nil, "", fmt.Errorf("sops: a value of type %T cannot be encrypted", v)
	}
}

func encryptValue(gcm cipher.AEAD, s, additionalData string) (string, error) {
	return encryptTyped(gcm, []byte(s), "str", additionalData)
}

// encryptTyped is sops's aes.Cipher.Encrypt: a random 32-byte nonce, the
// tag split off the ciphertext.
func encryptTyped(gcm cipher.AEAD, plain []byte, typ, additionalData string) (string, error) {
	iv := make([]byte, nonceSize)
	if _, err := rand.Read(iv); err != nil {
		return "", fmt.Errorf("sops: generating a nonce: %w", err)
	}
	out := gcm.Seal(nil, iv, plain, []byte(additionalData))
	tagAt := len(out) - gcm.Overhead()
	return fmt.Sprintf("ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]",
		base64.StdEncoding.EncodeToString(out[:tagAt]),
		base64.StdEncoding.EncodeToString(iv),
		base64.StdEncoding.EncodeToString(out[tagAt:]), typ), nil
}

// wrapKey encrypts the data key for one recipient into an armored age
// file, as sops's age.MasterKey.Encrypt.
func wrapKey(dataKey []byte, r age.Recipient) (string, error) {
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(dataKey); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	s := buf.String()
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s, nil
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// mappingOf builds a mapping from key, value pairs.
func mappingOf(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}
