package sops

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
  labels:
    app: db
data:
  password: aHVudGVyMg==
  empty: ""
immutable: true
type: Opaque
`

var testKey = []byte("0123456789abcdef0123456789abcdef")

func identity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// open decrypts a sealed file the way sops -d does (data key from the age
// stanza, every ENC value with its path, MAC checked) and returns the
// plaintext document as a map.
func open(t *testing.T, file []byte, id age.Identity) map[string]any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(file, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	var meta struct {
		Age []struct {
			Recipient string `yaml:"recipient"`
			Enc       string `yaml:"enc"`
		} `yaml:"age"`
		LastModified string `yaml:"lastmodified"`
		MAC          string `yaml:"mac"`
		Regex        string `yaml:"encrypted_regex"`
		Version      string `yaml:"version"`
	}
	var body []*yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		if root.Content[i].Value == "sops" {
			if err := root.Content[i+1].Decode(&meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body = append(body, root.Content[i], root.Content[i+1])
	}
	root.Content = body
	if meta.Version == "" || meta.LastModified == "" || len(meta.Age) == 0 {
		t.Fatalf("incomplete sops block: %+v", meta)
	}
	var key []byte
	for _, a := range meta.Age {
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(a.Enc)), id)
		if err != nil {
			continue
		}
		key, err = io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(key) != 32 {
		t.Fatalf("no data key for the identity")
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCMWithNonceSize(block, nonceSize)
	re := regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)
	dec := func(s, aad string) string {
		m := re.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("not an ENC value: %q", s)
		}
		data, _ := base64.StdEncoding.DecodeString(m[1])
		iv, _ := base64.StdEncoding.DecodeString(m[2])
		tag, _ := base64.StdEncoding.DecodeString(m[3])
		out, err := gcm.Open(nil, iv, append(data, tag...), []byte(aad))
		if err != nil {
			t.Fatalf("decrypting at %q: %v", aad, err)
		}
		return string(out)
	}
	encRe := regexp.MustCompile(meta.Regex)
	h := sha512.New()
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i < len(n.Content); i += 2 {
				walk(n.Content[i+1], append(append([]string{}, path...), n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.ScalarNode:
			sel := false
			for _, p := range path {
				sel = sel || encRe.MatchString(p)
			}
			if sel && n.Value != "" {
				n.Value = dec(n.Value, strings.Join(path, ":")+":")
				n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
			}
			var v any
			_ = n.Decode(&v)
			if v != nil {
				b, _, err := toBytes(v)
				if err != nil {
					t.Fatal(err)
				}
				h.Write(b)
			}
		}
	}
	walk(root, nil)
	if got, want := fmt.Sprintf("%X", h.Sum(nil)), dec(meta.MAC, meta.LastModified); got != want {
		t.Fatalf("MAC mismatch: %s != %s", got, want)
	}
	var out map[string]any
	if err := root.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSeal_roundTrip(t *testing.T) {
	alice, bob := identity(t), identity(t)
	opts := Options{Recipients: []string{alice.Recipient().String(), bob.Recipient().String()}, FingerprintKey: testKey,
		Now: time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)}
	out, reused, err := Seal([]byte(secretYAML), nil, opts)
	if err != nil || reused {
		t.Fatalf("Seal: reused=%v err=%v", reused, err)
	}
	if bytes.Contains(out, []byte("aHVudGVyMg==")) || bytes.Contains(out, []byte("hunter2")) {
		t.Fatalf("the value is in the file:\n%s", out)
	}
	for _, want := range []string{"name: db", "namespace: shop", "app: db", "type: Opaque", `lastmodified: "2026-11-30T22:00:00Z"`,
		"encrypted_regex: ^(data|stringData)$", "-----BEGIN AGE ENCRYPTED FILE-----", FingerprintField + ": " + fingerprintPrefix} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	for _, id := range []*age.X25519Identity{alice, bob} {
		got := open(t, out, id)
		data := got["data"].(map[string]any)
		if data["password"] != "aHVudGVyMg==" || data["empty"] != "" || got["immutable"] != true {
			t.Fatalf("decrypted to %v", got)
		}
	}
}

func TestSeal_reuse(t *testing.T) {
	id := identity(t)
	opts := Options{Recipients: []string{id.Recipient().String()}, FingerprintKey: testKey}
	first, _, err := Seal([]byte(secretYAML), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(secretYAML, "aHVudGVyMg==", "aHVudGVyMw==", 1)
	other := identity(t)
	tests := []struct {
		name   string
		plain  string
		opts   Options
		reused bool
	}{
		{"unchanged", secretYAML, opts, true},
		{"value changed", changed, opts, false},
		{"recipient added", secretYAML, Options{Recipients: []string{id.Recipient().String(), other.Recipient().String()}, FingerprintKey: testKey}, false},
		{"another fingerprint key", secretYAML, Options{Recipients: opts.Recipients, FingerprintKey: []byte("another key of 32 bytes, or so..")}, false},
		{"another regex", secretYAML, Options{Recipients: opts.Recipients, FingerprintKey: testKey, EncryptedRegex: "^data$"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, reused, err := Seal([]byte(tt.plain), first, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if reused != tt.reused || bytes.Equal(out, first) != tt.reused {
				t.Fatalf("reused=%v, same bytes=%v; want %v", reused, bytes.Equal(out, first), tt.reused)
			}
		})
	}
}

func TestSeal_errors(t *testing.T) {
	id := identity(t)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no recipient", Options{FingerprintKey: testKey}, "no age recipient"},
		{"malformed recipient", Options{Recipients: []string{id.Recipient().String(), "age1notakey"}, FingerprintKey: testKey}, "age recipient 2"},
		{"ssh key", Options{Recipients: []string{"ssh-ed25519 AAAA"}, FingerprintKey: testKey}, "age recipient 1"},
		{"no fingerprint key", Options{Recipients: []string{id.Recipient().String()}}, "fingerprint key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := Seal([]byte(secretYAML), nil, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || out != nil {
				t.Fatalf("err = %v, want %q and no output", err, tt.want)
			}
			if strings.Contains(err.Error(), "aHVudGVyMg") {
				t.Fatalf("the error carries a value: %v", err)
			}
		})
	}
}

func TestPriorFingerprint_notSealed(t *testing.T) {
	for _, in := range []string{"", "not: [yaml", secretYAML, "sops:\n  mac: x\n"} {
		if _, ok := PriorFingerprint([]byte(in)); ok {
			t.Errorf("PriorFingerprint(%q) found one", in)
		}
	}
}
