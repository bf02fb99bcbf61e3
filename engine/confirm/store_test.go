package confirm

import (
	"sync"
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestStore_Sweep_expiresUnconfirmed(t *testing.T) {
	tests := []struct {
		name        string
		after       time.Duration
		wantLeft    int
		wantExpired float64
	}{
		{name: "within the TTL", after: 59 * time.Second, wantLeft: 2, wantExpired: 0},
		{name: "past the TTL", after: 61 * time.Second, wantLeft: 0, wantExpired: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1700000000, 0)}
			store := NewStore(StoreOptions{TTL: time.Minute, Now: clock.Now})
			before := counterValue(t, pendingExpiredTotal)
			// A no-op update and a write another webhook denied: no
			// watch event will ever confirm them.
			store.AddPending(update(t, user("alice"), "1", configMap("u1", "1", "a")))
			store.AddPending(create(t, user("bob"), configMap("u2", "", "b")))
			clock.advance(tt.after)
			store.Sweep()
			if n := store.Len(); n != tt.wantLeft {
				t.Errorf("%d claims left, want %d", n, tt.wantLeft)
			}
			if d := counterValue(t, pendingExpiredTotal) - before; d != tt.wantExpired {
				t.Errorf("expired counted %v, want %v", d, tt.wantExpired)
			}
		})
	}
}

func TestStore_AddPending_evictsOldest(t *testing.T) {
	tests := []struct {
		name        string
		max, add    int
		wantEvicted float64
	}{
		{name: "under the bound", max: 4, add: 3, wantEvicted: 0},
		{name: "over the bound", max: 2, add: 5, wantEvicted: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewStore(StoreOptions{MaxPending: tt.max})
			before := counterValue(t, pendingEvictedTotal)
			for i := 0; i < tt.add; i++ {
				store.AddPending(update(t, user("alice"), string(rune('1'+i)), configMap("u1", "", "a")))
			}
			want := tt.add
			if want > tt.max {
				want = tt.max
			}
			if n := store.Len(); n != want {
				t.Errorf("%d claims kept, want %d", n, want)
			}
			if d := counterValue(t, pendingEvictedTotal) - before; d != tt.wantEvicted {
				t.Errorf("evicted counted %v, want %v", d, tt.wantEvicted)
			}
			// The newest claim survives.
			last := string(rune('1' + tt.add - 1))
			if got := store.claims(slot{kind: slotUpdate, uid: "u1", rv: last}); len(got) != 1 {
				t.Errorf("newest claim (rv %s) not kept", last)
			}
		})
	}
}

func TestStore_AddPending_dropsUnconfirmable(t *testing.T) {
	tests := []struct {
		name string
		p    change.Pending
	}{
		{name: "update without resourceVersion", p: change.Pending{Operation: "UPDATE", UID: "u1"}},
		{name: "delete without uid", p: change.Pending{Operation: "DELETE", Name: "x"}},
		{name: "create without uid or name", p: change.Pending{Operation: "CREATE"}},
		{name: "connect", p: change.Pending{Operation: "CONNECT", UID: "u1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewStore(StoreOptions{})
			store.AddPending(tt.p)
			if n := store.Len(); n != 0 {
				t.Errorf("kept %d claims, want 0", n)
			}
		})
	}
}

func TestStore_AddPending_concurrent(t *testing.T) {
	store := NewStore(StoreOptions{MaxPending: 100})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := change.Pending{Operation: "UPDATE", UID: "u1", OldResourceVersion: string(rune('a' + g)), User: user("alice")}
				store.AddPending(p)
				store.consume(slot{kind: slotUpdate, uid: "u1", rv: string(rune('a' + (g+1)%8))})
				store.dropObject("u2")
			}
		}(g)
	}
	wg.Wait()
	if n := store.Len(); n > 100 {
		t.Errorf("store holds %d claims, bound is 100", n)
	}
}

func TestStore_AddTaint_boundedAndExpiring(t *testing.T) {
	tests := []struct {
		name        string
		max, add    int
		after       time.Duration
		wantLeft    int
		wantEvicted float64
		wantBlind   bool
	}{
		{name: "within the bound", max: 4, add: 3, wantLeft: 3},
		{name: "over the bound blinds the store for the TTL", max: 2, add: 5, wantLeft: 2, wantEvicted: 3, wantBlind: true},
		{name: "past the TTL", max: 4, add: 3, after: 61 * time.Second, wantLeft: 0},
		{name: "blindness ends with the TTL of the evicted taint", max: 2, add: 5, after: 61 * time.Second, wantLeft: 0, wantEvicted: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1700000000, 0)}
			store := NewStore(StoreOptions{MaxTaints: tt.max, TTL: time.Minute, Now: clock.Now})
			before := counterValue(t, taintsEvictedTotal)
			for i := 0; i < tt.add; i++ {
				store.AddTaint(change.Taint{Operation: "UPDATE", UID: "u1", OldResourceVersion: string(rune('1' + i))})
			}
			clock.advance(tt.after)
			store.Sweep()
			store.mu.Lock()
			left := len(store.taints)
			store.mu.Unlock()
			if left != tt.wantLeft {
				t.Errorf("%d taints left, want %d", left, tt.wantLeft)
			}
			if d := counterValue(t, taintsEvictedTotal) - before; d != tt.wantEvicted {
				t.Errorf("evicted counted %v, want %v", d, tt.wantEvicted)
			}
			if blind := store.tainted(); blind != tt.wantBlind {
				t.Errorf("blind %v, want %v", blind, tt.wantBlind)
			}
		})
	}
}
