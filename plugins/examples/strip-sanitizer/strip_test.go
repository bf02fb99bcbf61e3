package main

import (
	"testing"
)

func TestStrip_cases(t *testing.T) {
	cases := []struct {
		name, object, settings, want string
	}{
		{
			name:     "pod env and labels",
			object:   `{"kind":"Pod","metadata":{"labels":{"x":"1","keep":"2"}},"spec":{"containers":[{"name":"c","env":[{"name":"MY_TOKEN","value":"s3"},{"name":"MODE","value":"a"}]}]}}`,
			settings: `{"dropLabels":["x"],"redactEnvPatterns":["(?i)token"]}`,
			want:     `{"kind":"Pod","metadata":{"labels":{"keep":"2"}},"spec":{"containers":[{"name":"c","env":[{"name":"MY_TOKEN","value":"REDACTED"},{"name":"MODE","value":"a"}]}]}}`,
		},
		{
			name:     "cronjob template",
			object:   `{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"env":[{"value":"p","name":"DB_PASSWORD"}]}]}}}}}}`,
			settings: `{"redactEnvPatterns":["PASSWORD"]}`,
			want:     `{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"env":[{"value":"REDACTED","name":"DB_PASSWORD"}]}]}}}}}}`,
		},
		{
			name:   "no settings leaves object untouched",
			object: `{"kind":"ConfigMap","metadata":{"annotations":{"a":"b"}}}`,
			want:   `{"kind":"ConfigMap","metadata":{"annotations":{"a":"b"}}}`,
		},
		{
			name:     "annotations with escaped key",
			object:   `{"metadata":{"annotations":{"a\/b":"1","c":"2"}}}`,
			settings: `{"dropAnnotations":["a/b"]}`,
			want:     `{"metadata":{"annotations":{"c":"2"}}}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := strip([]byte(tc.object), []byte(tc.settings))
			if err != nil || string(out) != tc.want {
				t.Fatalf("strip = %s, %v\nwant %s", out, err, tc.want)
			}
		})
	}
}

func TestStrip_badPattern(t *testing.T) {
	if _, err := strip([]byte(`{}`), []byte(`{"redactEnvPatterns":["("]}`)); err == nil {
		t.Fatal("invalid pattern accepted")
	}
}
