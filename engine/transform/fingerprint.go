package transform

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"sort"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// fingerprintKey keys every fingerprint of this process. A plain hash of a
// Secret, even of its sanitized form, would let anyone who sees it test
// guesses of the values offline; a keyed hash reveals nothing. The price is
// that fingerprints compare only within one process, which is all the
// confirm stage needs: pending changes live in memory.
var fingerprintKey = newFingerprintKey()

// macs holds keyed HMAC-SHA256 states: hmac.New hashes the key's inner and
// outer pads on every call, about a third of a small object's fingerprint,
// while Reset returns a used state to the keyed start for free.
var macs = sync.Pool{New: func() any { return hmac.New(sha256.New, fingerprintKey) }}

func newFingerprintKey() []byte {
	key := make([]byte, 32)
	// crypto/rand.Read never fails since Go 1.24.
	_, _ = rand.Read(key)
	return key
}

// Fingerprint returns a hex HMAC-SHA256 of obj's canonical form: the
// sanitized object, so that fields the API server sets between admission and
// persistence (uid, resourceVersion, generation, managedFields, timestamps,
// status, allocated IPs, generated selectors) do not count. Unlike the
// written form, a Secret's values do count (they are hashed, never output),
// and its stringData is folded into data as the API server does. Two objects
// have the same fingerprint exactly when Sanitize makes them equal, values
// of Secrets included. Fingerprints are comparable only within one process.
func Fingerprint(obj *unstructured.Unstructured) (string, error) {
	canon, err := canonical(obj)
	if err != nil {
		return "", err
	}
	mac, _ := macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(canon)
	var sum [sha256.Size]byte
	out := hex.EncodeToString(mac.Sum(sum[:0]))
	macs.Put(mac)
	return out, nil
}

// Equivalent reports whether a and b have the same canonical form, that is
// the same Fingerprint.
func Equivalent(a, b *unstructured.Unstructured) (bool, error) {
	ca, err := canonical(a)
	if err != nil {
		return false, err
	}
	cb, err := canonical(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ca, cb), nil
}

// canonical holds Secret values in clear text: it must never leave this
// package other than through a keyed hash or a comparison. It is a compact
// type-tagged encoding of the sanitized object with sorted keys, not its
// YAML: just as deterministic and many times cheaper than Marshal, which
// matters because the confirm stage fingerprints every admission request
// and watch event, while Marshal runs only for files that are written.
func canonical(obj *unstructured.Unstructured) ([]byte, error) {
	clean, err := sanitize(obj, secretKeep, nil)
	if err != nil {
		return nil, fmt.Errorf("fingerprint: %w", err)
	}
	out, err := appendCanonical(make([]byte, 0, 2048), clean)
	if err != nil {
		return nil, fmt.Errorf("fingerprint %s: %w", describe(obj), err)
	}
	return out, nil
}

// appendCanonical writes v so that two values have the same bytes exactly
// when they are equal: every scalar carries its type, strings are quoted,
// map keys are sorted.
func appendCanonical(b []byte, v interface{}) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(b, 'n'), nil
	case string:
		return strconv.AppendQuote(append(b, 's'), t), nil
	case bool:
		return strconv.AppendBool(append(b, 'b'), t), nil
	case int64:
		return strconv.AppendInt(append(b, 'i'), t, 10), nil
	case int:
		return strconv.AppendInt(append(b, 'i'), int64(t), 10), nil
	case int32:
		return strconv.AppendInt(append(b, 'i'), int64(t), 10), nil
	case uint:
		return appendUint(b, uint64(t)), nil
	case uint32:
		return appendUint(b, uint64(t)), nil
	case uint64:
		return appendUint(b, t), nil
	case float64:
		return strconv.AppendFloat(append(b, 'f'), t, 'g', -1, 64), nil
	case float32:
		return strconv.AppendFloat(append(b, 'f'), float64(t), 'g', -1, 32), nil
	case []interface{}:
		b = append(b, '[')
		for i, e := range t {
			var err error
			if b, err = appendCanonical(b, e); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			b = append(b, ',')
		}
		return append(b, ']'), nil
	case map[string]interface{}:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for _, k := range keys {
			b = strconv.AppendQuote(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendCanonical(b, t[k]); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			b = append(b, ',')
		}
		return append(b, '}'), nil
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}

// appendUint writes an unsigned integer as the signed one it equals, so
// that int64(1) and uint(1) are the same value, as they are in JSON.
func appendUint(b []byte, n uint64) []byte {
	if n <= math.MaxInt64 {
		return strconv.AppendInt(append(b, 'i'), int64(n), 10)
	}
	return strconv.AppendUint(append(b, 'i'), n, 10)
}
