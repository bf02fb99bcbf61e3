package transform

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestDefaultPath_layout(t *testing.T) {
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	configmaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	tests := []struct {
		name      string
		base      string
		gvr       schema.GroupVersionResource
		namespace string
		objName   string
		want      string
	}{
		{name: "namespaced in a group", base: "clusters/prod", gvr: deployments, namespace: "shop", objName: "web", want: "clusters/prod/shop/apps/deployments/web.yaml"},
		{name: "core group", base: "clusters/prod", gvr: configmaps, namespace: "shop", objName: "web-conf", want: "clusters/prod/shop/core/configmaps/web-conf.yaml"},
		{name: "empty base", gvr: configmaps, namespace: "shop", objName: "c", want: "shop/core/configmaps/c.yaml"},
		{name: "cluster scoped", gvr: schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, objName: "shop", want: "_cluster/core/namespaces/shop.yaml"},
		{name: "custom resource", base: "k8s/", gvr: schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}, namespace: "shop", objName: "shop-tls", want: "k8s/shop/cert-manager.io/certificates/shop-tls.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DefaultPath(tt.base, tt.gvr, tt.namespace, tt.objName)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			// A default path is always accepted by CleanPath.
			rel := got
			if tt.base != "" {
				rel = got[len(cleanBaseForTest(t, tt.base))+1:]
			}
			if clean, err := CleanPath(tt.base, rel); err != nil || clean != got {
				t.Errorf("CleanPath(%q, %q) = %q, %v; want %q", tt.base, rel, clean, err, got)
			}
		})
	}
}

func cleanBaseForTest(t *testing.T, base string) string {
	t.Helper()
	b, err := cleanBasePath(base)
	if err != nil {
		t.Fatalf("base %q: %v", base, err)
	}
	return b
}

func TestCleanPath_accepts(t *testing.T) {
	tests := []struct {
		name, base, p, want string
	}{
		{name: "plain", base: "prod", p: "shop/web.yaml", want: "prod/shop/web.yaml"},
		{name: "yml", p: "a/b.yml", want: "a/b.yml"},
		{name: "normalised", base: "./prod/", p: "./shop//x/../web.yaml", want: "prod/shop/web.yaml"},
		{name: "dot-dot inside", base: "prod", p: "a/../b.yaml", want: "prod/b.yaml"},
		{name: "gitignore-like name", p: ".github/workflows/x.yaml", want: ".github/workflows/x.yaml"},
		{name: "dotfile with extension", p: "a/.hidden.yaml", want: "a/.hidden.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.base, tt.p)
			if err != nil || got != tt.want {
				t.Errorf("CleanPath(%q, %q) = %q, %v; want %q", tt.base, tt.p, got, err, tt.want)
			}
		})
	}
}

func TestCleanPath_rejects(t *testing.T) {
	tests := []struct {
		name, base, p string
	}{
		{name: "empty", p: ""},
		{name: "blank", p: "  "},
		{name: "dot", p: "."},
		{name: "absolute", p: "/etc/passwd.yaml"},
		{name: "escapes", base: "prod", p: "../staging/x.yaml"},
		{name: "escapes after clean", base: "prod", p: "a/../../x.yaml"},
		{name: "git dir", p: ".git/config.yaml"},
		{name: "git dir nested", p: "a/.git/hooks/x.yaml"},
		{name: "git dir upper case", p: "a/.GIT/x.yaml"},
		{name: "git dir via dot-dot", p: "a/../.git/x.yaml"},
		{name: "no extension", p: "a/b"},
		{name: "other extension", p: "a/b.json"},
		{name: "extension only", p: "a/.yaml"},
		{name: "backslash", p: `a\..\..\x.yaml`},
		{name: "control char", p: "a/b\n.yaml"},
		{name: "nul", p: "a/b\x00.yaml"},
		{name: "absolute base", base: "/prod", p: "x.yaml"},
		{name: "escaping base", base: "../prod", p: "x.yaml"},
		{name: "git base", base: ".git", p: "x.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.base, tt.p)
			if !errors.Is(err, ErrInvalidPath) {
				t.Errorf("CleanPath(%q, %q) = %q, %v; want ErrInvalidPath", tt.base, tt.p, got, err)
			}
		})
	}
}
