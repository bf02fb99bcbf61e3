package gitstore

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1" //nolint:gosec // the pack format's trailer is SHA-1; it names nothing
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// objectBuffer holds the objects one commit (or one replay) creates in
// memory, over the clone's store for reads, and writes them with flush as
// one packfile: one file instead of a loose object file (a temporary file,
// a rename and often a directory) per blob and tree, which was a quarter
// of the manager's CPU in the whole-process benchmark.
type objectBuffer struct {
	storer.EncodedObjectStorer
	// dir is the clone's Git directory; "" for an in-memory store.
	dir   string
	objs  map[plumbing.Hash]plumbing.EncodedObject
	order []plumbing.Hash
}

func newObjectBuffer(base storer.EncodedObjectStorer, dir string) *objectBuffer {
	return &objectBuffer{EncodedObjectStorer: base, dir: dir, objs: map[plumbing.Hash]plumbing.EncodedObject{}}
}

// NewEncodedObject returns an in-memory object.
func (b *objectBuffer) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

// SetEncodedObject keeps o until flush.
func (b *objectBuffer) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	h := o.Hash()
	if _, ok := b.objs[h]; !ok {
		b.objs[h] = o
		b.order = append(b.order, h)
	}
	return h, nil
}

// blobRef is a blob that reads the content its commit's caller holds, so
// that an objectBuffer keeps no second copy of it until flush. The content
// must not change until the buffer is flushed (Commit holds its request).
type blobRef struct {
	hash    plumbing.Hash
	content []byte
}

// copy returns the blob as an object of its own.
func (o *blobRef) copy() plumbing.EncodedObject {
	m := &plumbing.MemoryObject{}
	m.SetType(plumbing.BlobObject)
	_, _ = m.Write(o.content) // a MemoryObject's Write does not fail
	return m
}

// Hash implements plumbing.EncodedObject.
func (o *blobRef) Hash() plumbing.Hash { return o.hash }

// Type implements plumbing.EncodedObject.
func (o *blobRef) Type() plumbing.ObjectType { return plumbing.BlobObject }

// SetType implements plumbing.EncodedObject; a blobRef stays a blob.
func (o *blobRef) SetType(plumbing.ObjectType) {}

// Size implements plumbing.EncodedObject.
func (o *blobRef) Size() int64 { return int64(len(o.content)) }

// SetSize implements plumbing.EncodedObject; the size is the content's.
func (o *blobRef) SetSize(int64) {}

// Reader implements plumbing.EncodedObject.
func (o *blobRef) Reader() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(o.content)), nil
}

// Writer implements plumbing.EncodedObject; a blobRef is read-only.
func (o *blobRef) Writer() (io.WriteCloser, error) {
	return nil, errors.New("gitstore: a buffered blob is read-only")
}

// EncodedObject reads a buffered object, else the store's.
func (b *objectBuffer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if o, ok := b.objs[h]; ok {
		if t != plumbing.AnyObject && o.Type() != t {
			return nil, plumbing.ErrObjectNotFound
		}
		return o, nil
	}
	return b.EncodedObjectStorer.EncodedObject(t, h)
}

// HasEncodedObject looks in the buffer, then in the store.
func (b *objectBuffer) HasEncodedObject(h plumbing.Hash) error {
	if _, ok := b.objs[h]; ok {
		return nil
	}
	return b.EncodedObjectStorer.HasEncodedObject(h)
}

// EncodedObjectSize looks in the buffer, then in the store.
func (b *objectBuffer) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if o, ok := b.objs[h]; ok {
		return o.Size(), nil
	}
	return b.EncodedObjectStorer.EncodedObjectSize(h)
}

// flush writes the buffered objects to the store: as one packfile (without
// deltas) when the store takes packfiles, else one by one. The buffer is
// empty afterwards. Objects reach the store before any reference names
// them: a crash in between leaves only unreferenced objects.
func (b *objectBuffer) flush() error {
	if len(b.order) == 0 {
		return nil
	}
	defer func() { b.objs, b.order = map[plumbing.Hash]plumbing.EncodedObject{}, nil }()
	pw, ok := b.EncodedObjectStorer.(storer.PackfileWriter)
	if !ok {
		for _, h := range b.order {
			o := b.objs[h]
			if ref, ok := o.(*blobRef); ok {
				o = ref.copy() // the store keeps it: not the caller's bytes
			}
			if _, err := b.EncodedObjectStorer.SetEncodedObject(o); err != nil {
				return fmt.Errorf("gitstore: store object %s: %w", h, err)
			}
		}
		return nil
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return fmt.Errorf("gitstore: open a packfile: %w", err)
	}
	if err := b.encodePack(w); err != nil {
		_ = w.Close()
		return fmt.Errorf("gitstore: write a packfile of %d objects: %w", len(b.order), err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("gitstore: close a packfile of %d objects: %w", len(b.order), err)
	}
	if m, ok := b.EncodedObjectStorer.(packMerger); ok && b.dir != "" {
		if err := mergeSmallPacks(m, b.dir); err != nil {
			return err
		}
	}
	return nil
}

// encodePack writes the buffered objects to w as a version 2 packfile
// without deltas, each object zlib-compressed at BestSpeed. go-git's
// encoder compresses at the default level, whose compressor clears 640 KB
// of hash tables for every object: for a commit's few hundred small
// blobs and trees that clearing was most of the flush (about 4 % of the
// manager's CPU in the whole-process benchmark). BestSpeed's reset costs
// nothing; a push recompresses what it sends anyway.
func (b *objectBuffer) encodePack(w io.Writer) error {
	sum := sha1.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, sum), 64<<10)
	var head [12]byte
	copy(head[:4], "PACK")
	binary.BigEndian.PutUint32(head[4:8], 2)
	binary.BigEndian.PutUint32(head[8:], uint32(len(b.order)))
	if _, err := bw.Write(head[:]); err != nil {
		return fmt.Errorf("write pack header: %w", err)
	}
	zw, err := zlib.NewWriterLevel(bw, zlib.BestSpeed)
	if err != nil {
		return fmt.Errorf("zlib writer: %w", err)
	}
	var entry [binary.MaxVarintLen64 + 1]byte
	for _, h := range b.order {
		o := b.objs[h]
		if _, err := bw.Write(entryHeader(entry[:0], o.Type(), o.Size())); err != nil {
			return fmt.Errorf("write object %s: %w", h, err)
		}
		zw.Reset(bw)
		if err := copyObject(zw, o); err != nil {
			return fmt.Errorf("write object %s: %w", h, err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("write object %s: %w", h, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	if _, err := w.Write(sum.Sum(nil)); err != nil {
		return fmt.Errorf("write pack checksum: %w", err)
	}
	return nil
}

// entryHeader appends a pack entry's header: the type in bits 4-6 of the
// first byte, the size in its low 4 bits and 7 bits of each further byte,
// little end first, the top bit saying another byte follows.
func entryHeader(dst []byte, t plumbing.ObjectType, size int64) []byte {
	c := byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	for size > 0 {
		dst = append(dst, c|0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	return append(dst, c)
}

// copyObject writes an object's content to w.
func copyObject(w io.Writer, o plumbing.EncodedObject) error {
	if ref, ok := o.(*blobRef); ok {
		_, err := w.Write(ref.content)
		return err
	}
	r, err := o.Reader()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = r.Close()
		return err
	}
	return r.Close()
}

// packMerger is the part of go-git's filesystem storage that mergeSmallPacks
// uses.
type packMerger interface {
	storer.EncodedObjectStorer
	storer.PackfileWriter
	storer.PackedObjectStorer
	Reindex()
}

// Pack count bounds: with more than maxPacks packfiles the mergePacks
// smallest are merged into one, so every object lookup (which asks each
// pack's index) stays cheap and each object is rewritten only a few times
// (the merged packs grow by tiers, as in a log-structured merge).
const (
	maxPacks   = 48
	mergePacks = 32
)

// mergeSmallPacks merges the smallest packs when there are too many.
func mergeSmallPacks(s packMerger, dir string) error {
	packs, err := s.ObjectPacks()
	if err != nil || len(packs) <= maxPacks {
		return err
	}
	type packInfo struct {
		hash   plumbing.Hash
		hashes []plumbing.Hash
	}
	infos := make([]packInfo, 0, len(packs))
	for _, p := range packs {
		hs, err := packHashes(dir, p)
		if err != nil {
			return err
		}
		infos = append(infos, packInfo{hash: p, hashes: hs})
	}
	sort.Slice(infos, func(i, j int) bool { return len(infos[i].hashes) < len(infos[j].hashes) })
	var objs []plumbing.Hash
	seen := map[plumbing.Hash]bool{}
	for _, in := range infos[:mergePacks] {
		for _, h := range in.hashes {
			if !seen[h] {
				seen[h] = true
				objs = append(objs, h)
			}
		}
	}
	w, err := s.PackfileWriter()
	if err != nil {
		return fmt.Errorf("gitstore: open a packfile to merge packs: %w", err)
	}
	merged, err := packfile.NewEncoder(w, s, false).Encode(objs, 0)
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("gitstore: merge %d packs: %w", mergePacks, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("gitstore: close the merged pack: %w", err)
	}
	var errs []error
	for _, in := range infos[:mergePacks] {
		if in.hash == merged {
			continue
		}
		if err := s.DeleteOldObjectPackAndIndex(in.hash, time.Time{}); err != nil {
			errs = append(errs, err)
		}
	}
	s.Reindex()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gitstore: delete merged packs: %w", err)
	}
	return nil
}

// packHashes lists the objects of the pack h from its index file.
func packHashes(dir string, h plumbing.Hash) ([]plumbing.Hash, error) {
	f, err := os.Open(filepath.Join(dir, "objects", "pack", "pack-"+h.String()+".idx"))
	if err != nil {
		return nil, fmt.Errorf("gitstore: open the index of pack %s: %w", h, err)
	}
	defer func() { _ = f.Close() }()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(bufio.NewReader(f)).Decode(idx); err != nil {
		return nil, fmt.Errorf("gitstore: read the index of pack %s: %w", h, err)
	}
	entries, err := idx.Entries()
	if err != nil {
		return nil, fmt.Errorf("gitstore: list pack %s: %w", h, err)
	}
	defer func() { _ = entries.Close() }()
	var out []plumbing.Hash
	for {
		e, err := entries.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gitstore: list pack %s: %w", h, err)
		}
		out = append(out, e.Hash)
	}
}
