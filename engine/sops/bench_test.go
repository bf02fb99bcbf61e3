package sops

import (
	"testing"

	"filippo.io/age"
)

// BenchmarkSeal measures encrypting a small Secret for one recipient (a
// changed Secret) and the check that reuses the previous file (an
// unchanged one, e.g. at every reconcile).
func BenchmarkSeal(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Recipients: []string{id.Recipient().String()}, FingerprintKey: testKey}
	prior, _, err := Seal([]byte(secretYAML), nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encrypt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Seal([]byte(secretYAML), nil, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, reused, err := Seal([]byte(secretYAML), prior, opts); err != nil || !reused {
				b.Fatal(err)
			}
		}
	})
}
