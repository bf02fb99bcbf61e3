package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/plugin"
)

// defaultPushKey is the key the module is stored under; the .gz suffix tells
// the operator that the bytes are gzip-compressed.
const defaultPushKey = "module.wasm.gz"

// clusterPush says where in the cluster a module goes.
type clusterPush struct {
	Namespace string
	Name      string
	Key       string
	Secret    bool
}

// pushReport describes what a push wrote, for the user.
type pushReport struct {
	Source  v1alpha1.ModuleSource
	Objects []string // written objects, first the one the rule references
	Stale   []string // chunk objects of an earlier push that were deleted
	Gzipped int
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func gzipModule(wasm []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if _, err := zw.Write(wasm); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// pushToCluster gzips wasm and writes it to a ConfigMap (binaryData) or a
// Secret (data) named p.Name, split over further objects when the
// compressed module exceeds plugin.ChunkBytes. Chunk objects are named after
// the module's digest, so writing them never disturbs a module that rules
// still read; the referenced object is written last and switches to the new
// chunks in one update. Chunks of earlier pushes are then deleted.
func pushToCluster(ctx context.Context, c client.Client, p clusterPush, wasm []byte) (pushReport, error) {
	if p.Key == "" {
		p.Key = defaultPushKey
	}
	if err := validatePush(p); err != nil {
		return pushReport{}, err
	}
	if len(wasm) == 0 {
		return pushReport{}, errors.New("module file is empty")
	}
	digest := sha256Hex(wasm)
	gz, err := gzipModule(wasm)
	if err != nil {
		return pushReport{}, err
	}
	var chunks [][]byte
	for rest := gz; len(rest) > 0; {
		n := min(len(rest), plugin.ChunkBytes)
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	if len(chunks) > plugin.MaxChunks {
		return pushReport{}, fmt.Errorf("module compresses to %d bytes, more than %d objects of %d bytes",
			len(gz), plugin.MaxChunks, plugin.ChunkBytes)
	}

	report := pushReport{Gzipped: len(gz)}
	var parts []string
	for i, chunk := range chunks[1:] {
		partName := fmt.Sprintf("%s-%s-%d", p.Name, digest[:12], i+1)
		labels := map[string]string{plugin.ModuleLabel: p.Name, plugin.ChunkOfLabel: p.Name}
		if err := upsertModuleObject(ctx, c, p, partName, chunk, labels, ""); err != nil {
			return pushReport{}, err
		}
		parts = append(parts, partName)
	}
	if err := upsertModuleObject(ctx, c, p, p.Name, chunks[0], map[string]string{plugin.ModuleLabel: p.Name},
		strings.Join(parts, ",")); err != nil {
		return pushReport{}, err
	}
	report.Objects = append([]string{p.Name}, parts...)

	stale, err := deleteStaleChunks(ctx, c, p, parts)
	if err != nil {
		return pushReport{}, err
	}
	report.Stale = stale

	ref := &v1alpha1.KeyReference{Name: p.Name, Key: p.Key}
	report.Source = v1alpha1.ModuleSource{SHA256: digest}
	if p.Secret {
		report.Source.SecretRef = ref
	} else {
		report.Source.ConfigMapRef = ref
	}
	return report, nil
}

func validatePush(p clusterPush) error {
	if p.Namespace == "" {
		return errors.New("no namespace: pass --namespace or set one in the kubeconfig context")
	}
	if msgs := validation.IsDNS1123Subdomain(p.Name); len(msgs) > 0 {
		return fmt.Errorf("--name %q: %s", p.Name, strings.Join(msgs, "; "))
	}
	// The name is also a label value, and chunk names add a suffix.
	if msgs := validation.IsValidLabelValue(p.Name); len(msgs) > 0 {
		return fmt.Errorf("--name %q: %s", p.Name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsConfigMapKey(p.Key); len(msgs) > 0 {
		return fmt.Errorf("--key %q: %s", p.Key, strings.Join(msgs, "; "))
	}
	return nil
}

// upsertModuleObject creates or updates one ConfigMap or Secret holding
// data under p.Key. Other keys, labels and annotations of an existing
// object are kept; the chunks annotation is set to chunks, or removed when
// chunks is empty.
func upsertModuleObject(ctx context.Context, c client.Client, p clusterPush, objName string, data []byte, labels map[string]string, chunks string) error {
	var obj client.Object
	if p.Secret {
		obj = &corev1.Secret{}
	} else {
		obj = &corev1.ConfigMap{}
	}
	key := client.ObjectKey{Namespace: p.Namespace, Name: objName}
	err := c.Get(ctx, key, obj)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading %s %s: %w", kindName(p.Secret), key, err)
	}
	if !exists {
		obj.SetNamespace(p.Namespace)
		obj.SetName(objName)
	}
	objLabels := obj.GetLabels()
	if objLabels == nil {
		objLabels = map[string]string{}
	}
	maps.Copy(objLabels, labels)
	obj.SetLabels(objLabels)
	annotations := obj.GetAnnotations()
	if chunks != "" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[plugin.ChunksAnnotation] = chunks
	} else {
		delete(annotations, plugin.ChunksAnnotation)
	}
	obj.SetAnnotations(annotations)
	switch o := obj.(type) {
	case *corev1.Secret:
		if o.Data == nil {
			o.Data = map[string][]byte{}
		}
		o.Data[p.Key] = data
		if !exists {
			o.Type = corev1.SecretTypeOpaque
		}
	case *corev1.ConfigMap:
		if o.BinaryData == nil {
			o.BinaryData = map[string][]byte{}
		}
		o.BinaryData[p.Key] = data
		delete(o.Data, p.Key)
	}
	if exists {
		if err := c.Update(ctx, obj); err != nil {
			return fmt.Errorf("updating %s %s: %w", kindName(p.Secret), key, err)
		}
		return nil
	}
	if err := c.Create(ctx, obj); err != nil {
		return fmt.Errorf("creating %s %s: %w", kindName(p.Secret), key, err)
	}
	return nil
}

// deleteStaleChunks deletes chunk objects of this module that keep is not
// listing, and returns their names.
func deleteStaleChunks(ctx context.Context, c client.Client, p clusterPush, keep []string) ([]string, error) {
	var objs []client.Object
	opts := []client.ListOption{client.InNamespace(p.Namespace), client.MatchingLabels{plugin.ChunkOfLabel: p.Name}}
	if p.Secret {
		var list corev1.SecretList
		if err := c.List(ctx, &list, opts...); err != nil {
			return nil, fmt.Errorf("listing chunk secrets of %s: %w", p.Name, err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	} else {
		var list corev1.ConfigMapList
		if err := c.List(ctx, &list, opts...); err != nil {
			return nil, fmt.Errorf("listing chunk configmaps of %s: %w", p.Name, err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	}
	var deleted []string
	for _, obj := range objs {
		if obj.GetName() == p.Name || slices.Contains(keep, obj.GetName()) {
			continue
		}
		if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return deleted, fmt.Errorf("deleting stale chunk %s/%s: %w", p.Namespace, obj.GetName(), err)
		}
		deleted = append(deleted, obj.GetName())
	}
	slices.Sort(deleted)
	return deleted, nil
}

func kindName(secret bool) string {
	if secret {
		return "secret"
	}
	return "configmap"
}

// pushToOCI pushes wasm as a single-layer OCI artifact (layer media type
// plugin.OCILayerMediaType, config media type plugin.OCIConfigMediaType,
// platform wasip1/wasm) and returns a source pinned to the manifest digest.
func pushToOCI(ctx context.Context, ref string, wasm []byte, insecure bool, opts ...remote.Option) (v1alpha1.ModuleSource, error) {
	if len(wasm) == 0 {
		return v1alpha1.ModuleSource{}, errors.New("module file is empty")
	}
	if !strings.HasPrefix(ref, "oci://") {
		return v1alpha1.ModuleSource{}, fmt.Errorf("--oci %q: want oci://registry/repository:tag", ref)
	}
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(strings.TrimPrefix(ref, "oci://"), nameOpts...)
	if err != nil {
		return v1alpha1.ModuleSource{}, fmt.Errorf("--oci %q: %w", ref, err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "wasm",
		OS:           "wasip1",
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return v1alpha1.ModuleSource{}, fmt.Errorf("building artifact config: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, plugin.OCIConfigMediaType)
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(wasm, plugin.OCILayerMediaType)})
	if err != nil {
		return v1alpha1.ModuleSource{}, fmt.Errorf("building artifact: %w", err)
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return v1alpha1.ModuleSource{}, fmt.Errorf("pushing to %s: %w", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1alpha1.ModuleSource{}, fmt.Errorf("artifact digest: %w", err)
	}
	return v1alpha1.ModuleSource{
		URL:    "oci://" + r.Context().Digest(d.String()).String(),
		SHA256: sha256Hex(wasm),
	}, nil
}

// ruleSnippet renders the source as YAML to paste into a rule's module entry.
func ruleSnippet(src v1alpha1.ModuleSource) (string, error) {
	b, err := yaml.Marshal(map[string]v1alpha1.ModuleSource{"source": src})
	if err != nil {
		return "", fmt.Errorf("rendering snippet: %w", err)
	}
	return string(b), nil
}
