package controller

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

// ModuleLoader fetches a rule's WASM module and loads it into the host.
type ModuleLoader interface {
	Load(ctx context.Context, namespace string, ref v1alpha1.ModuleReference) (*plugin.Module, error)
}

// PluginLoader loads modules from their source (ConfigMap, Secret, HTTPS,
// OCI), verified against the pinned sha256, into the shared WASM host.
type PluginLoader struct {
	// Fetcher reads module bytes from their source.
	Fetcher *plugin.Fetcher
	// Host compiles and runs modules.
	Host *plugin.Host
}

// Load implements ModuleLoader.
func (l PluginLoader) Load(ctx context.Context, namespace string, ref v1alpha1.ModuleReference) (*plugin.Module, error) {
	wasm, err := l.Fetcher.Fetch(ctx, namespace, ref.Source)
	if err != nil {
		return nil, fmt.Errorf("fetching module %q: %w", ref.Name, err)
	}
	m, err := l.Host.Load(ctx, wasm, ref.Source.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading module %q: %w", ref.Name, err)
	}
	return m, nil
}

// loadedModules tracks the modules each rule holds, so that a rebuilt or
// deleted rule releases the ones it no longer uses.
type loadedModules struct {
	mu     sync.Mutex
	byRule map[rules.Key][]*plugin.Module
}

// swap records mods as the rule's modules and releases the previous ones.
func (l *loadedModules) swap(ctx context.Context, k rules.Key, mods []*plugin.Module) {
	l.mu.Lock()
	if l.byRule == nil {
		l.byRule = map[rules.Key][]*plugin.Module{}
	}
	old := l.byRule[k]
	if len(mods) == 0 {
		delete(l.byRule, k)
	} else {
		l.byRule[k] = mods
	}
	l.mu.Unlock()
	for _, m := range old {
		m.Release(ctx)
	}
}

// HealthEvents forwards rule health changes to the two rule controllers as
// generic events, so a sanitizer failure reaches the rule's conditions at
// once.
type HealthEvents struct {
	// Health is the source of changes.
	Health *rules.Health
	// Namespaced receives WatchRule keys; Cluster ClusterWatchRule keys.
	Namespaced, Cluster chan event.GenericEvent
}

// NewHealthEvents returns HealthEvents with buffered channels.
func NewHealthEvents(h *rules.Health) *HealthEvents {
	return &HealthEvents{Health: h, Namespaced: make(chan event.GenericEvent, 256), Cluster: make(chan event.GenericEvent, 256)}
}

// Start forwards until ctx ends.
func (h *HealthEvents) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-h.Health.Changed():
			if k.Kind == rules.KindClusterWatchRule {
				obj := &v1alpha1.ClusterWatchRule{}
				obj.Name = k.Name
				h.Cluster <- event.GenericEvent{Object: obj}
				continue
			}
			obj := &v1alpha1.WatchRule{}
			obj.Namespace, obj.Name = k.Namespace, k.Name
			h.Namespaced <- event.GenericEvent{Object: obj}
		}
	}
}
