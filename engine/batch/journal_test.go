package batch

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

// TestJournal_flush_survivesWithoutSync: a flushed record is in the file
// (what a SIGKILL leaves: the kernel holds the write) before any fsync; an
// fsync is due journalSyncEvery after the first unsynced write, and sync
// clears it.
func TestJournal_flush_survivesWithoutSync(t *testing.T) {
	alice := change.User{Username: "alice"}
	path := filepath.Join(t.TempDir(), "journal")
	j, _, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = j.close() }()
	t0 := time.Unix(1000, 0)
	if err := j.append(journalRecord{Session: 1, User: alice, Path: "a.yaml", Content: []byte("v: a\n"), When: 1}); err != nil {
		t.Fatal(err)
	}
	if j.syncDue(t0.Add(time.Hour)) {
		t.Fatal("sync due before anything was written")
	}
	if err := j.flush(t0); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // another reader, as the next run after a kill
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := readJournal(f)
	_ = f.Close()
	if err != nil || len(recs) != 1 || recs[0].Path != "a.yaml" || recs[0].User.Username != alice.Username {
		t.Fatalf("after flush without fsync the file holds %+v (%v), want the record", recs, err)
	}
	// A later flush keeps the first unsynced write's time.
	_ = j.append(journalRecord{Session: 1, User: alice, Path: "b.yaml", When: 2})
	if err := j.flush(t0.Add(900 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{name: "just written", at: t0, want: false},
		{name: "before the bound", at: t0.Add(journalSyncEvery - time.Millisecond), want: false},
		{name: "at the bound", at: t0.Add(journalSyncEvery), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := j.syncDue(tt.at); got != tt.want {
				t.Errorf("syncDue = %v, want %v", got, tt.want)
			}
		})
	}
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
	if j.syncDue(t0.Add(time.Hour)) {
		t.Error("sync due after sync")
	}
}
