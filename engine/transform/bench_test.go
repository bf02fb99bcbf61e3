package transform

import "testing"

// The Deployment fixture is about 4 KB of JSON, half of it managedFields,
// as `kubectl get -o json` returns it after an apply and a rollout.

func BenchmarkSanitize_deployment(b *testing.B) {
	obj := loadObject(b, "deployment.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sanitize(obj, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal_deployment(b *testing.B) {
	obj := loadObject(b, "deployment.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(obj); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal_sanitizedDeployment(b *testing.B) {
	obj, err := Sanitize(loadObject(b, "deployment.json"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(obj); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalNode_sanitizedDeployment is the yaml.v3 encoder path
// that Marshal's direct writer replaced (and must match byte for byte),
// kept to compare the two in one run.
func BenchmarkMarshalNode_sanitizedDeployment(b *testing.B) {
	obj, err := Sanitize(loadObject(b, "deployment.json"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := marshalNode(obj); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFingerprint_deployment(b *testing.B) {
	obj := loadObject(b, "deployment.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fingerprint(obj); err != nil {
			b.Fatal(err)
		}
	}
}
