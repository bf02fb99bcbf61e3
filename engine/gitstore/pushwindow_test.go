package gitstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// remoteDeltas counts the deltified objects in the remote's packs, as git
// verify-pack reports them (an object line with a depth and a base).
func remoteDeltas(t *testing.T, remote string) (objects, deltas int) {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(remote, "objects", "pack", "*.idx"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pack on the remote (%v): the push was unpacked into loose objects", err)
	}
	for _, idx := range packs {
		for _, line := range strings.Split(runGit(t, remote, "verify-pack", "-v", idx), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || len(f[0]) != 40 {
				continue
			}
			objects++
			if len(f) == 7 {
				deltas++
			}
		}
	}
	return objects, deltas
}

// similarFiles returns n ConfigMap-like files that differ in a few bytes,
// the case where delta compression finds bases.
func similarFiles(n int) map[string]string {
	files := make(map[string]string, n)
	for i := range n {
		files[fmt.Sprintf("ns/configmaps/cm-%05d.yaml", i)] = fmt.Sprintf(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%05d\n  namespace: ns\n  labels:\n    app: bench\n    tier: backend\ndata:\n  key: value-%d\n  other: a longer value that every file shares so that a delta pays off\n", i, i)
	}
	return files
}

func TestPushWindow(t *testing.T) {
	if got := pushWindow(10); got != packWindow {
		t.Errorf("pushWindow(10) = %d, want %d", got, packWindow)
	}
	if got := pushWindow(largePushObjects); got != packWindow {
		t.Errorf("pushWindow(%d) = %d, want %d", largePushObjects, got, packWindow)
	}
	if got := pushWindow(largePushObjects + 1); got != 0 {
		t.Errorf("pushWindow(%d) = %d, want 0", largePushObjects+1, got)
	}
}

// A first snapshot of many objects goes out without delta search; every
// file arrives and the remote's repository is sound. A push of everyday
// size still sends deltas.
func TestWriter_Push_largePackWithoutDeltas(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      int
		wantDeltas bool
	}{
		{"everyday", 300, true},
		{"large", largePushObjects + 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := newBareRemote(t)
			w := openWriter(t, remote, filepath.Join(t.TempDir(), "clone"))
			files := similarFiles(tc.files)
			commitFiles(t, w, "alice", "snapshot", files)
			if _, err := w.Push(context.Background()); err != nil {
				t.Fatalf("Push: %v", err)
			}
			fsck(t, remote)
			if n := len(strings.Split(runGit(t, remote, "ls-tree", "-r", "--name-only", "main"), "\n")); n != tc.files {
				t.Fatalf("remote main has %d files, want %d", n, tc.files)
			}
			if got := runGit(t, remote, "show", "main:ns/configmaps/cm-00007.yaml"); got+"\n" != files["ns/configmaps/cm-00007.yaml"] {
				t.Errorf("cm-00007 on the remote = %q", got)
			}
			objects, deltas := remoteDeltas(t, remote)
			if objects < tc.files {
				t.Errorf("remote packs hold %d objects, want at least %d", objects, tc.files)
			}
			if tc.wantDeltas && deltas == 0 {
				t.Errorf("an everyday push of %d objects sent no delta", objects)
			}
			if !tc.wantDeltas && deltas != 0 {
				t.Errorf("a push of %d objects sent %d deltas, want none", objects, deltas)
			}
			t.Logf("%d files: %d objects, %d deltas", tc.files, objects, deltas)
		})
	}
}
