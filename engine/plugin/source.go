package plugin

import (
	"bytes"
	"compress/gzip"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
)

// Defaults for Fetcher fields left zero, and the conventions shared with the
// upload CLI (cmd/reverser).
const (
	// DefaultMaxModuleBytes caps a module's uncompressed size (and the
	// compressed bytes read to get it) at 64 MiB.
	DefaultMaxModuleBytes = 64 << 20
	// DefaultMaxCacheBytes bounds the bytes kept by the digest cache.
	DefaultMaxCacheBytes = 64 << 20
	// DefaultFetchTimeout bounds one fetch from a URL or a registry.
	DefaultFetchTimeout = 60 * time.Second
	// DefaultModuleKey is the key read when a KeyReference leaves Key empty
	// (the CRD defaults it to the same value).
	DefaultModuleKey = "module.wasm"

	// ChunkBytes is how many bytes of the (compressed) module the upload CLI
	// puts in one ConfigMap or Secret. The API server rejects objects whose
	// data exceeds 1 MiB; 900 KiB leaves room for metadata.
	ChunkBytes = 900 << 10
	// MaxChunks bounds how many objects one module may be split over.
	MaxChunks = 128
	// ChunksAnnotation, on the ConfigMap or Secret a rule references, lists
	// the names of further objects (same kind, same namespace, same key)
	// whose bytes follow this object's bytes, comma-separated, in order. The
	// concatenation is the (usually gzip-compressed) module.
	ChunksAnnotation = "reverser.gitops-reverser.dev/chunks"
	// ModuleLabel marks every object written by the upload CLI with the
	// module's name.
	ModuleLabel = "reverser.gitops-reverser.dev/module"
	// ChunkOfLabel marks an object that holds a later chunk of the named
	// module; the upload CLI deletes chunks that the module no longer lists.
	ChunkOfLabel = "reverser.gitops-reverser.dev/chunk-of"

	// OCILayerMediaType is the layer media type the upload CLI pushes
	// (wasm-to-oci, Kubewarden, oci-distribution).
	OCILayerMediaType = "application/vnd.wasm.content.layer.v1+wasm"
	// OCIConfigMediaType is the config media type the upload CLI pushes.
	OCIConfigMediaType = "application/vnd.wasm.config.v1+json"
)

// ociLayerMediaTypes are the layer media types recognised as a WASM module,
// in order of preference.
var ociLayerMediaTypes = []types.MediaType{
	OCILayerMediaType,
	"application/vnd.module.wasm.content.layer.v1+wasm", // Istio/wasme
	"application/wasm", // CNCF wasm OCI artifact layout
}

// Reasons of failed fetches, next to the Host's reasons (errors.go).
const (
	// ReasonInvalidSource means the ModuleSource is malformed: none or
	// several sources set, a bad sha256, an unsupported URL scheme, or
	// content that is not what its name says (a .gz key that is not gzip).
	ReasonInvalidSource Reason = "InvalidSource"
	// ReasonModuleNotFound means the object, key, URL or image does not exist.
	ReasonModuleNotFound Reason = "ModuleNotFound"
	// ReasonModuleTooLarge means the module, compressed or not, exceeds
	// Fetcher.MaxModuleBytes.
	ReasonModuleTooLarge Reason = "ModuleTooLarge"
	// ReasonFetchFailed means reading the source failed for another reason
	// (network, permissions, registry errors).
	ReasonFetchFailed Reason = "FetchFailed"
)

var sha256Hex = regexp.MustCompile(`^[a-f0-9]{64}$`)

var gzipMagic = []byte{0x1f, 0x8b}

// SourceError names the source a fetch failed on. Fetch returns it wrapped
// in a *PluginError that carries the Reason, so ReasonOf works on both.
// Source never contains credentials: URLs lose their user info and query.
type SourceError struct {
	Source string
	Err    error
}

// Error implements error.
func (e *SourceError) Error() string { return e.Source + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *SourceError) Unwrap() error { return e.Err }

// Fetcher reads WASM modules from ConfigMaps, Secrets, HTTPS URLs and OCI
// registries and returns their uncompressed bytes once they hash to the
// pinned sha256. The zero value is usable once Reader is set (ConfigMap and
// Secret sources need it); a Fetcher is safe for concurrent use and must not
// be copied after first use.
//
// Modules are cached by digest: a module that many rules reference is read
// once. A cached digest is served without reading its source again, since
// the digest proves the bytes whichever source supplied them.
type Fetcher struct {
	// Reader reads ConfigMaps and Secrets. Use an uncached reader (the
	// manager's APIReader): a cached client would keep every ConfigMap and
	// Secret of the cluster in memory to serve a handful of reads.
	Reader client.Reader
	// HTTPClient fetches https:// URLs, and its Transport (when set) is used
	// for OCI registries. Nil uses a client with http.DefaultTransport.
	HTTPClient *http.Client
	// OCIKeychain resolves registry credentials; nil pulls anonymously.
	OCIKeychain authn.Keychain
	// MaxModuleBytes caps the uncompressed module and the compressed bytes
	// read; zero means DefaultMaxModuleBytes.
	MaxModuleBytes int64
	// MaxCacheBytes bounds the digest cache; zero means
	// DefaultMaxCacheBytes, negative disables the cache.
	MaxCacheBytes int64
	// Timeout bounds one fetch; zero means DefaultFetchTimeout.
	Timeout time.Duration

	mu       sync.Mutex
	lru      *list.List               // of *cacheEntry, most recent first
	byDigest map[string]*list.Element // digest -> element of lru
	cached   int64                    // bytes held by lru
	inflight map[string]*fetchCall    // source identity + digest -> call
}

type cacheEntry struct {
	digest string
	data   []byte
}

// fetchCall lets concurrent fetches of one source and digest share one read.
type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

// Fetch returns the uncompressed bytes of the module src describes, read
// from namespace for ConfigMap and Secret sources, after checking that they
// hash to src.SHA256. The returned slice is the caller's to keep. Failures
// are *PluginError (Reason one of the Reason* constants of this file or
// ReasonDigestMismatch) wrapping a *SourceError that names the source.
func (f *Fetcher) Fetch(ctx context.Context, namespace string, src v1alpha1.ModuleSource) ([]byte, error) {
	kind, err := sourceKind(src)
	if err != nil {
		return nil, &PluginError{Module: src.SHA256, Reason: ReasonInvalidSource, Err: err}
	}
	if data, ok := f.cacheGet(src.SHA256); ok {
		return data, nil
	}
	// The raw URL, not its redacted name: two URLs that differ only in a
	// token are different sources.
	key := strings.Join([]string{kind, sourceName(namespace, src), src.URL, src.SHA256}, "|")
	for {
		data, retry, err := f.fetchShared(ctx, key, namespace, src)
		if !retry {
			if err != nil {
				return nil, err
			}
			return bytes.Clone(data), nil
		}
	}
}

// fetchShared runs one fetch per key at a time; other callers wait for it.
// retry reports that the shared fetch was cancelled by its own caller's
// context while this caller's context is still live.
func (f *Fetcher) fetchShared(ctx context.Context, key, namespace string, src v1alpha1.ModuleSource) (data []byte, retry bool, err error) {
	f.mu.Lock()
	if f.inflight == nil {
		f.inflight = make(map[string]*fetchCall)
	}
	if call, ok := f.inflight[key]; ok {
		f.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, false, fetchError(src, namespace, ReasonFetchFailed, ctx.Err())
		}
		if call.err != nil && ctx.Err() == nil &&
			(errors.Is(call.err, context.Canceled) || errors.Is(call.err, context.DeadlineExceeded)) {
			return nil, true, nil
		}
		return call.data, false, call.err
	}
	call := &fetchCall{done: make(chan struct{})}
	f.inflight[key] = call
	f.mu.Unlock()

	call.data, call.err = f.fetch(ctx, namespace, src)
	if call.err == nil {
		f.cachePut(src.SHA256, call.data)
	}
	f.mu.Lock()
	delete(f.inflight, key)
	f.mu.Unlock()
	close(call.done)
	return call.data, false, call.err
}

// fetch reads, decompresses and verifies one module, bypassing the cache.
func (f *Fetcher) fetch(ctx context.Context, namespace string, src v1alpha1.ModuleSource) ([]byte, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		raw      []byte
		gzipHint bool
		reason   Reason
		err      error
	)
	switch {
	case src.ConfigMapRef != nil:
		raw, reason, err = f.readObjectChunks(ctx, namespace, src.ConfigMapRef, false)
		gzipHint = strings.HasSuffix(refKey(src.ConfigMapRef), ".gz")
	case src.SecretRef != nil:
		raw, reason, err = f.readObjectChunks(ctx, namespace, src.SecretRef, true)
		gzipHint = strings.HasSuffix(refKey(src.SecretRef), ".gz")
	case strings.HasPrefix(src.URL, "oci://"):
		raw, reason, err = f.readOCI(ctx, strings.TrimPrefix(src.URL, "oci://"))
	default:
		raw, reason, err = f.readHTTP(ctx, src.URL)
		if u, perr := url.Parse(src.URL); perr == nil {
			gzipHint = strings.HasSuffix(u.Path, ".gz")
		}
	}
	if err != nil {
		return nil, fetchError(src, namespace, reason, err)
	}

	data, reason, err := f.decompress(raw, gzipHint)
	if err != nil {
		return nil, fetchError(src, namespace, reason, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != src.SHA256 {
		return nil, fetchError(src, namespace, ReasonDigestMismatch, digestMismatch(src, got))
	}
	return data, nil
}

// digestMismatch says that the module is not the pinned one. The digest it
// does have is shown only for a URL or OCI source: those are where the
// rule's author fetches the module too. For a ConfigMap or Secret it is
// left out: whoever may write a rule may not be allowed to read the
// namespace's ConfigMaps and Secrets, and the digest of any key would let
// them test guesses at its value through the rule's condition.
func digestMismatch(src v1alpha1.ModuleSource, got string) error {
	if src.URL != "" {
		return fmt.Errorf("module hashes to sha256:%s and does not match the pinned digest sha256:%s", got, src.SHA256)
	}
	return fmt.Errorf("module does not match the pinned digest sha256:%s "+
		"(the digest of an object's content is not shown; pin the sha256 of the uncompressed module file)", src.SHA256)
}

func (f *Fetcher) maxBytes() int64 {
	if f.MaxModuleBytes > 0 {
		return f.MaxModuleBytes
	}
	return DefaultMaxModuleBytes
}

// decompress gunzips raw when the name says .gz or the bytes start with the
// gzip magic, stopping at MaxModuleBytes so a small bomb cannot expand
// without bound.
func (f *Fetcher) decompress(raw []byte, gzipHint bool) ([]byte, Reason, error) {
	isGzip := bytes.HasPrefix(raw, gzipMagic)
	if !isGzip {
		if gzipHint {
			return nil, ReasonInvalidSource, errors.New("name ends in .gz but the content is not gzip-compressed")
		}
		return raw, "", nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, ReasonInvalidSource, fmt.Errorf("reading gzip header: %w", err)
	}
	limit := f.maxBytes()
	data, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, ReasonInvalidSource, fmt.Errorf("decompressing gzip: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, ReasonModuleTooLarge, fmt.Errorf("module decompresses to more than %d bytes", limit)
	}
	return data, "", nil
}

// readObjectChunks reads key from the referenced ConfigMap (binaryData) or
// Secret (data) and from the further objects its ChunksAnnotation lists.
func (f *Fetcher) readObjectChunks(ctx context.Context, namespace string, ref *v1alpha1.KeyReference, secret bool) ([]byte, Reason, error) {
	if f.Reader == nil {
		return nil, ReasonFetchFailed, errors.New("fetcher has no Kubernetes reader")
	}
	key := refKey(ref)
	limit := f.maxBytes()
	first, annotations, reason, err := f.readObjectKey(ctx, namespace, ref.Name, key, secret)
	if err != nil {
		return nil, reason, err
	}
	parts := splitChunkNames(annotations[ChunksAnnotation])
	if len(parts)+1 > MaxChunks {
		return nil, ReasonInvalidSource, fmt.Errorf("annotation %s lists %d chunks, at most %d are allowed",
			ChunksAnnotation, len(parts), MaxChunks-1)
	}
	if int64(len(first)) > limit {
		return nil, ReasonModuleTooLarge, fmt.Errorf("module is larger than %d bytes", limit)
	}
	if len(parts) == 0 {
		return first, "", nil
	}
	out := bytes.Clone(first)
	for i, part := range parts {
		chunk, _, reason, err := f.readObjectKey(ctx, namespace, part, key, secret)
		if err != nil {
			return nil, reason, fmt.Errorf("chunk %d of %d: %w", i+2, len(parts)+1, err)
		}
		if int64(len(out))+int64(len(chunk)) > limit {
			return nil, ReasonModuleTooLarge, fmt.Errorf("module is larger than %d bytes", limit)
		}
		out = append(out, chunk...)
	}
	return out, "", nil
}

// readObjectKey reads one key of one ConfigMap or Secret and returns it
// with the object's annotations.
func (f *Fetcher) readObjectKey(ctx context.Context, namespace, objName, key string, secret bool) ([]byte, map[string]string, Reason, error) {
	objKey := client.ObjectKey{Namespace: namespace, Name: objName}
	kind := "configmap"
	if secret {
		kind = "secret"
	}
	var (
		obj  client.Object
		data func() ([]byte, bool)
	)
	if secret {
		s := &corev1.Secret{}
		obj = s
		data = func() ([]byte, bool) { b, ok := s.Data[key]; return b, ok }
	} else {
		cm := &corev1.ConfigMap{}
		obj = cm
		data = func() ([]byte, bool) { b, ok := cm.BinaryData[key]; return b, ok }
	}
	if err := f.Reader.Get(ctx, objKey, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, ReasonModuleNotFound, fmt.Errorf("%s %s not found", kind, objKey)
		}
		return nil, nil, ReasonFetchFailed, fmt.Errorf("reading %s %s: %w", kind, objKey, err)
	}
	b, ok := data()
	if !ok {
		if cm, isCM := obj.(*corev1.ConfigMap); isCM {
			if _, inData := cm.Data[key]; inData {
				return nil, nil, ReasonInvalidSource, fmt.Errorf(
					"configmap %s has key %q in data; a module must be in binaryData", objKey, key)
			}
		}
		return nil, nil, ReasonModuleNotFound, fmt.Errorf("%s %s has no key %q", kind, objKey, key)
	}
	return b, obj.GetAnnotations(), "", nil
}

// readHTTP GETs an https:// URL (or http:// on a loopback host, for tests).
func (f *Fetcher) readHTTP(ctx context.Context, rawURL string) ([]byte, Reason, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, ReasonInvalidSource, errors.New("URL does not parse")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
	default:
		return nil, ReasonInvalidSource, fmt.Errorf("URL scheme %q is not supported: use https:// or oci://", u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, ReasonInvalidSource, fmt.Errorf("building request: %w", stripURLError(err))
	}
	hc := f.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// url.Error repeats the URL, query and all; the SourceError names
		// the source without its query.
		return nil, ReasonFetchFailed, fmt.Errorf("GET: %w", stripURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, ReasonModuleNotFound, fmt.Errorf("GET: HTTP %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, ReasonFetchFailed, fmt.Errorf("GET: HTTP %d", resp.StatusCode)
	}
	limit := f.maxBytes()
	if resp.ContentLength > limit {
		return nil, ReasonModuleTooLarge, fmt.Errorf("response of %d bytes exceeds %d", resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, ReasonFetchFailed, fmt.Errorf("reading response: %w", stripURLError(err))
	}
	if int64(len(body)) > limit {
		return nil, ReasonModuleTooLarge, fmt.Errorf("response exceeds %d bytes", limit)
	}
	return body, "", nil
}

// readOCI pulls the WASM layer of an OCI artifact.
func (f *Fetcher) readOCI(ctx context.Context, refStr string) ([]byte, Reason, error) {
	ref, err := name.ParseReference(refStr, name.StrictValidation)
	if err != nil {
		return nil, ReasonInvalidSource, fmt.Errorf("parsing OCI reference: %w", err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if f.HTTPClient != nil && f.HTTPClient.Transport != nil {
		opts = append(opts, remote.WithTransport(f.HTTPClient.Transport))
	}
	if f.OCIKeychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(f.OCIKeychain))
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, ociReason(err), fmt.Errorf("fetching manifest: %w", err)
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		img, err = wasmImageFromIndex(desc)
	} else {
		img, err = desc.Image()
	}
	if err != nil {
		return nil, ReasonInvalidSource, fmt.Errorf("reading image: %w", err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return nil, ociReason(err), fmt.Errorf("reading manifest: %w", err)
	}
	layer, err := pickWASMLayer(manifest.Layers)
	if err != nil {
		return nil, ReasonInvalidSource, err
	}
	limit := f.maxBytes()
	if layer.Size > limit {
		return nil, ReasonModuleTooLarge, fmt.Errorf("layer of %d bytes exceeds %d", layer.Size, limit)
	}
	l, err := img.LayerByDigest(layer.Digest)
	if err != nil {
		return nil, ReasonFetchFailed, fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, ociReason(err), fmt.Errorf("fetching layer %s: %w", layer.Digest, err)
	}
	defer func() { _ = rc.Close() }()
	// The registry client checks the layer's digest at EOF.
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, ociReason(err), fmt.Errorf("reading layer %s: %w", layer.Digest, err)
	}
	if int64(len(data)) > limit {
		return nil, ReasonModuleTooLarge, fmt.Errorf("layer exceeds %d bytes", limit)
	}
	return data, "", nil
}

// wasmImageFromIndex picks the manifest of an index whose platform is wasm,
// or the only manifest.
func wasmImageFromIndex(desc *remote.Descriptor) (v1.Image, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index manifest: %w", err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "wasm" {
			return idx.Image(m.Digest)
		}
	}
	if len(im.Manifests) == 1 {
		return idx.Image(im.Manifests[0].Digest)
	}
	return nil, fmt.Errorf("index has %d manifests and none for architecture wasm", len(im.Manifests))
}

// pickWASMLayer returns the first layer of a known WASM media type, or the
// only layer.
func pickWASMLayer(layers []v1.Descriptor) (v1.Descriptor, error) {
	for _, mt := range ociLayerMediaTypes {
		for _, l := range layers {
			if l.MediaType == mt {
				return l, nil
			}
		}
	}
	if len(layers) == 1 {
		return layers[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("artifact has %d layers and none of media type %s", len(layers), OCILayerMediaType)
}

// ociReason maps registry errors to a Reason.
func ociReason(err error) Reason {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return ReasonModuleNotFound
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return ReasonModuleNotFound
			}
		}
	}
	return ReasonFetchFailed
}

// cacheGet returns a copy of a cached module.
func (f *Fetcher) cacheGet(digest string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.byDigest[digest]
	if !ok {
		return nil, false
	}
	f.lru.MoveToFront(el)
	return bytes.Clone(el.Value.(*cacheEntry).data), true
}

// cachePut keeps data under digest, dropping the least recently used
// modules beyond MaxCacheBytes.
func (f *Fetcher) cachePut(digest string, data []byte) {
	limit := f.MaxCacheBytes
	if limit == 0 {
		limit = DefaultMaxCacheBytes
	}
	if limit < 0 || int64(len(data)) > limit {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lru == nil {
		f.lru = list.New()
		f.byDigest = make(map[string]*list.Element)
	}
	if el, ok := f.byDigest[digest]; ok {
		f.lru.MoveToFront(el)
		return
	}
	f.byDigest[digest] = f.lru.PushFront(&cacheEntry{digest: digest, data: data})
	f.cached += int64(len(data))
	for f.cached > limit {
		last := f.lru.Back()
		e := last.Value.(*cacheEntry)
		f.lru.Remove(last)
		delete(f.byDigest, e.digest)
		f.cached -= int64(len(e.data))
	}
}

// sourceKind checks that exactly one source is set and the digest is well
// formed, and names the kind of source.
func sourceKind(src v1alpha1.ModuleSource) (string, error) {
	if !sha256Hex.MatchString(src.SHA256) {
		return "", errors.New("sha256 must be 64 lowercase hex digits")
	}
	var kinds []string
	if src.ConfigMapRef != nil {
		kinds = append(kinds, "configMapRef")
	}
	if src.SecretRef != nil {
		kinds = append(kinds, "secretRef")
	}
	if src.URL != "" {
		kinds = append(kinds, "url")
	}
	switch len(kinds) {
	case 0:
		return "", errors.New("module source sets none of configMapRef, secretRef, url")
	case 1:
	default:
		return "", fmt.Errorf("module source sets %s; set exactly one", strings.Join(kinds, " and "))
	}
	if (src.ConfigMapRef != nil && src.ConfigMapRef.Name == "") || (src.SecretRef != nil && src.SecretRef.Name == "") {
		return "", errors.New("module source reference has no name")
	}
	return kinds[0], nil
}

// sourceName describes a source for errors and logs, without credentials.
func sourceName(namespace string, src v1alpha1.ModuleSource) string {
	switch {
	case src.ConfigMapRef != nil:
		return fmt.Sprintf("configmap %s/%s key %s", namespace, src.ConfigMapRef.Name, refKey(src.ConfigMapRef))
	case src.SecretRef != nil:
		return fmt.Sprintf("secret %s/%s key %s", namespace, src.SecretRef.Name, refKey(src.SecretRef))
	default:
		return redactURL(src.URL)
	}
}

// redactURL drops user info, query and fragment, which may carry tokens.
func redactURL(raw string) string {
	if strings.HasPrefix(raw, "oci://") {
		// An OCI reference has no user info or query; anything with an @
		// before the first / is not one and is cut off to be safe.
		ref := strings.TrimPrefix(raw, "oci://")
		host, _, _ := strings.Cut(ref, "/")
		if strings.Contains(host, "@") {
			return "oci://(redacted)"
		}
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

func fetchError(src v1alpha1.ModuleSource, namespace string, reason Reason, err error) *PluginError {
	if reason == "" {
		reason = ReasonFetchFailed
	}
	return &PluginError{Module: src.SHA256, Reason: reason, Err: &SourceError{Source: sourceName(namespace, src), Err: err}}
}

func refKey(ref *v1alpha1.KeyReference) string {
	if ref.Key == "" {
		return DefaultModuleKey
	}
	return ref.Key
}

func splitChunkNames(s string) []string {
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stripURLError drops the *url.Error wrapper, whose message repeats the
// full URL including its query.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
