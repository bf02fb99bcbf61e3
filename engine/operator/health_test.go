package operator

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/confirm"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// electionManager is a manager whose election and cache sync the test
// sets; every other method is absent.
type electionManager struct {
	manager.Manager
	elected chan struct{}
	synced  bool
}

func (m *electionManager) Elected() <-chan struct{} { return m.elected }
func (m *electionManager) GetCache() cache.Cache    { return syncCache{synced: m.synced} }

type syncCache struct {
	cache.Cache
	synced bool
}

func (c syncCache) WaitForCacheSync(context.Context) bool { return c.synced }

type discard struct{}

func (discard) Record(context.Context, change.Change) {}

func TestOperator_InformersCheck_leaderOnly(t *testing.T) {
	w, err := confirm.NewWatcher(confirm.Options{
		Client: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), Index: rules.NewIndex(),
		Store: confirm.NewStore(confirm.StoreOptions{}), Sink: discard{},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		leader  bool
		synced  bool
		watcher *confirm.Watcher
		wantErr string
	}{
		{"a follower is ready: it watches nothing", false, false, nil, ""},
		{"a leader whose cache has not synced is not ready", true, false, w, "cache has not synced"},
		{"a leader without its watch is not ready", true, true, nil, "informers have not synced"},
		{"a leader whose cache and informers synced is ready", true, true, w, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &electionManager{elected: make(chan struct{}), synced: tt.synced}
			if tt.leader {
				close(m.elected)
			}
			op := &Operator{watcher: tt.watcher}
			err := op.InformersCheck(m)(httptest.NewRequest("GET", "/readyz", nil))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

func TestOperator_InformersCheck_staysReadyOnceSynced(t *testing.T) {
	m := &electionManager{elected: make(chan struct{}), synced: true}
	close(m.elected)
	w, err := confirm.NewWatcher(confirm.Options{
		Client: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), Index: rules.NewIndex(),
		Store: confirm.NewStore(confirm.StoreOptions{}), Sink: discard{},
	})
	if err != nil {
		t.Fatal(err)
	}
	op := &Operator{watcher: w}
	check := op.InformersCheck(m)
	if err := check(httptest.NewRequest("GET", "/readyz", nil)); err != nil {
		t.Fatalf("first check: %v", err)
	}
	// A rule added later has informers that sync in the background: the
	// pod stays in its Service.
	m.synced = false
	if err := check(httptest.NewRequest("GET", "/readyz", nil)); err != nil {
		t.Fatalf("after a sync: %v, want ready", err)
	}
}
