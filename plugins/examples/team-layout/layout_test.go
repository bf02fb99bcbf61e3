package main

import "testing"

func TestTeamPath_cases(t *testing.T) {
	cases := []struct {
		name, object, settings, want string
		wantErr                      bool
	}{
		{name: "label", object: `{"kind":"Service","metadata":{"name":"web","namespace":"shop","labels":{"owner":"payments"}}}`, settings: `{"label":"owner","fallback":"none"}`, want: "teams/payments/shop/service/web.yaml"},
		{name: "fallback", object: `{"kind":"Service","metadata":{"name":"web","namespace":"shop"}}`, settings: `{"label":"owner","fallback":"none"}`, want: "teams/none/shop/service/web.yaml"},
		{name: "cluster scoped", object: `{"kind":"ClusterRole","metadata":{"name":"view"}}`, want: "teams/unowned/_cluster/clusterrole/view.yaml"},
		{name: "no kind", object: `{"metadata":{"name":"x"}}`, wantErr: true},
		{name: "empty fallback", object: `{"kind":"A","metadata":{"name":"x"}}`, settings: `{"fallback":""}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := teamPath([]byte(tc.object), []byte(tc.settings))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("teamPath = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
