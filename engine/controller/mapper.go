package controller

import (
	"fmt"
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// DiscoveryMapper resolves rules' resources through the API server's
// discovery, and can be reset when the API changes. controller-runtime's
// dynamic RESTMapper re-reads discovery on a miss, but it remembers which
// versions a group serves: a CRD that adds a version to a known group
// stays a miss. The rule controller resets this mapper when a CRD that a
// rule waits for changes, and the next lookup starts from fresh discovery.
type DiscoveryMapper struct {
	build func() (meta.RESTMapper, error)

	mu      sync.Mutex
	current meta.RESTMapper
}

var _ meta.ResettableRESTMapper = (*DiscoveryMapper)(nil)

// NewDiscoveryMapper returns a DiscoveryMapper for the API server of cfg;
// it reads discovery lazily, on the first lookup.
func NewDiscoveryMapper(cfg *rest.Config, httpClient *http.Client) *DiscoveryMapper {
	return &DiscoveryMapper{build: func() (meta.RESTMapper, error) {
		m, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
		if err != nil {
			return nil, fmt.Errorf("creating a discovery RESTMapper: %w", err)
		}
		return m, nil
	}}
}

// Reset forgets what discovery said; the next lookup asks again.
func (d *DiscoveryMapper) Reset() {
	d.mu.Lock()
	d.current = nil
	d.mu.Unlock()
}

func (d *DiscoveryMapper) mapper() (meta.RESTMapper, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == nil {
		m, err := d.build()
		if err != nil {
			return nil, err
		}
		d.current = m
	}
	return d.current, nil
}

// KindFor implements meta.RESTMapper.
func (d *DiscoveryMapper) KindFor(resource schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	m, err := d.mapper()
	if err != nil {
		return schema.GroupVersionKind{}, err
	}
	return m.KindFor(resource)
}

// KindsFor implements meta.RESTMapper.
func (d *DiscoveryMapper) KindsFor(resource schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	m, err := d.mapper()
	if err != nil {
		return nil, err
	}
	return m.KindsFor(resource)
}

// ResourceFor implements meta.RESTMapper.
func (d *DiscoveryMapper) ResourceFor(input schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	m, err := d.mapper()
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	return m.ResourceFor(input)
}

// ResourcesFor implements meta.RESTMapper.
func (d *DiscoveryMapper) ResourcesFor(input schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	m, err := d.mapper()
	if err != nil {
		return nil, err
	}
	return m.ResourcesFor(input)
}

// RESTMapping implements meta.RESTMapper.
func (d *DiscoveryMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	m, err := d.mapper()
	if err != nil {
		return nil, err
	}
	return m.RESTMapping(gk, versions...)
}

// RESTMappings implements meta.RESTMapper.
func (d *DiscoveryMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	m, err := d.mapper()
	if err != nil {
		return nil, err
	}
	return m.RESTMappings(gk, versions...)
}

// ResourceSingularizer implements meta.RESTMapper.
func (d *DiscoveryMapper) ResourceSingularizer(resource string) (string, error) {
	m, err := d.mapper()
	if err != nil {
		return "", err
	}
	return m.ResourceSingularizer(resource)
}
