package batch

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

// The journal holds the rendered file changes of a target's author sessions
// that are not committed yet, so that a crash of the manager loses neither a
// confirmed change nor its author. It holds what Git would hold (after the
// sanitizers: Secrets redacted or encrypted), never the object as the
// cluster sent it.
//
// On disk: a sequence of frames, each a 4-byte big-endian payload length, a
// 4-byte CRC-32C of the payload and the payload (one JSON journalRecord).
// A frame that is cut short or fails its checksum ends the journal: it is
// the record a crash tore, and it is cut off when the journal is opened.
// Records are appended as changes arrive and written to the file once per
// batch of changes the worker takes from its queue (a write into the
// kernel's page cache survives a SIGKILL of the process); they are fsync'd
// (which only a crash of the node needs) before any session is committed
// and otherwise at most every journalSyncEvery, instead of once per batch.
// Once sessions are committed into the local clone the
// journal is rewritten with only the sessions still open (usually none:
// an empty file).

// journalRecord is one file change of one author session.
type journalRecord struct {
	// Session numbers the author session within its target.
	Session uint64 `json:"s"`
	// User is the session's author.
	User change.User `json:"u"`
	// Path of the file.
	Path string `json:"p"`
	// Content is the file's new content (absent for a delete).
	Content []byte `json:"c,omitempty"`
	// Delete removes the file.
	Delete bool `json:"d,omitempty"`
	// MovedFrom marks the old path of an object its layout moved.
	MovedFrom bool `json:"mv,omitempty"`
	// Changes are the commit message lines this record adds to its session.
	Changes []string `json:"m,omitempty"`
	// Whys are the reasons given with Changes, index by index (absent when
	// none has one).
	Whys []string `json:"w,omitempty"`
	// When is when the change was added, in Unix nanoseconds.
	When int64 `json:"t"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxRecord bounds one frame; anything larger is a corrupt length.
const maxRecord = 64 << 20

// journalSyncEvery bounds how long records written to the journal wait
// for an fsync while changes keep coming: the part of the journal a power
// loss of the node may cost (the local clone, which go-git writes without
// fsync, is not safer). An fsync per batch was 6-8 % of the manager's CPU
// in make bench-e2e.
const journalSyncEvery = time.Second

// journal is an append-only file of journalRecords.
type journal struct {
	path string
	f    *os.File
	w    *bufio.Writer
	size int64
	// dirty: records appended since the last write to the file.
	dirty bool
	// unsynced: records written to the file since the last fsync, the
	// first of them at since.
	unsynced bool
	since    time.Time
}

// openJournal opens (creating) the journal at path and returns the records
// it holds. A torn or corrupt tail is cut off.
func openJournal(path string) (*journal, []journalRecord, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("creating the journal's directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the journal: %w", err)
	}
	recs, good, err := readJournal(bufio.NewReader(f))
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if err := f.Truncate(good); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("cutting the journal's torn tail: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("seeking the journal's end: %w", err)
	}
	return &journal{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), size: good}, recs, nil
}

// readJournal decodes frames until the end or the first bad frame and
// returns the records and the offset after the last good frame.
func readJournal(r io.Reader) ([]journalRecord, int64, error) {
	var recs []journalRecord
	var good int64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return recs, good, nil // end, or a torn header
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > maxRecord {
			return recs, good, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return recs, good, nil // torn payload
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return recs, good, nil
		}
		var rec journalRecord
		if err := json.Unmarshal(payload, &rec); err != nil {
			return recs, good, nil
		}
		recs = append(recs, rec)
		good += int64(len(hdr)) + int64(n)
	}
}

func encodeFrame(w io.Writer, rec journalRecord) (int64, error) {
	payload, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encoding a journal record: %w", err)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(payload, crcTable))
	if _, err := w.Write(hdr[:]); err != nil {
		return 0, fmt.Errorf("writing the journal: %w", err)
	}
	if _, err := w.Write(payload); err != nil {
		return 0, fmt.Errorf("writing the journal: %w", err)
	}
	return int64(len(hdr) + len(payload)), nil
}

// append buffers one record; flush writes it to the file (safe from a
// SIGKILL), sync makes it durable (safe from a crash of the node).
func (j *journal) append(rec journalRecord) error {
	n, err := encodeFrame(j.w, rec)
	j.size += n
	j.dirty = true
	return err
}

// flush writes buffered records to the file without an fsync.
func (j *journal) flush(now time.Time) error {
	if !j.dirty {
		return nil
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	j.dirty = false
	if !j.unsynced {
		j.unsynced, j.since = true, now
	}
	return nil
}

// syncDue reports whether written records have waited journalSyncEvery
// for an fsync.
func (j *journal) syncDue(now time.Time) bool {
	return j.unsynced && now.Sub(j.since) >= journalSyncEvery
}

// sync writes buffered records and fsyncs the file.
func (j *journal) sync() error {
	if err := j.flush(time.Now()); err != nil {
		return err
	}
	if !j.unsynced {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing the journal: %w", err)
	}
	j.unsynced = false
	journalSyncs.Inc()
	return nil
}

// rewrite replaces the journal with recs: written to a temporary file,
// fsync'd and renamed over the journal, so a crash leaves either the old
// or the new journal whole.
func (j *journal) rewrite(recs []journalRecord) error {
	if len(recs) == 0 && j.size == 0 {
		return nil
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compacting the journal: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var size int64
	for _, rec := range recs {
		n, err := encodeFrame(w, rec)
		if err != nil {
			_ = f.Close()
			return err
		}
		size += n
	}
	if err := errors.Join(w.Flush(), f.Sync()); err != nil {
		_ = f.Close()
		return fmt.Errorf("compacting the journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		_ = f.Close()
		return fmt.Errorf("compacting the journal: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	_ = j.f.Close()
	j.f, j.w, j.size, j.dirty, j.unsynced = f, bufio.NewWriterSize(f, 64<<10), size, false, false
	return nil
}

// close flushes and closes the journal.
func (j *journal) close() error {
	err := j.sync()
	return errors.Join(err, j.f.Close())
}
