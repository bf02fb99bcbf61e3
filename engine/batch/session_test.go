package batch

import (
	"testing"
	"time"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/rules"
)

func TestSessions_add_closesOtherAuthorsSessionOnSharedPath(t *testing.T) {
	now := time.Unix(1000, 0)
	ss := newSessions(Limits{Idle: 5 * time.Second, MaxChanges: 10, MaxAge: time.Minute})
	alice, bob := change.User{Username: "alice"}, change.User{Username: "bob"}
	if closed := ss.add(alice, fileChange{path: "a.yaml", summary: "UPDATE a"}, now); len(closed) != 0 {
		t.Fatalf("first change closed %d sessions", len(closed))
	}
	if closed := ss.add(bob, fileChange{path: "b.yaml", summary: "UPDATE b"}, now); len(closed) != 0 {
		t.Fatalf("bob on another path closed %d sessions", len(closed))
	}
	closed := ss.add(bob, fileChange{path: "a.yaml", summary: "UPDATE a"}, now.Add(time.Second))
	if len(closed) != 1 || closed[0].author.Username != "alice" {
		t.Fatalf("bob touching alice's path closed %v, want alice's session", closed)
	}
	if got := ss.byPath["a.yaml"].author.Username; got != "bob" {
		t.Fatalf("a.yaml held by %s, want bob", got)
	}
}

func TestSessions_due_idleAgeAndSize(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name    string
		limits  Limits
		changes int
		wait    time.Duration
		closed  int
	}{
		{"open while active", Limits{Idle: 5 * time.Second, MaxAge: time.Minute}, 1, time.Second, 0},
		{"idle closes", Limits{Idle: 5 * time.Second, MaxAge: time.Minute}, 1, 5 * time.Second, 1},
		{"age closes", Limits{Idle: time.Hour, MaxAge: 2 * time.Second}, 1, 3 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := newSessions(tt.limits)
			for i := 0; i < tt.changes; i++ {
				ss.add(change.User{Username: "alice"}, fileChange{path: "a.yaml"}, now)
			}
			if got := len(ss.due(now.Add(tt.wait))); got != tt.closed {
				t.Fatalf("due closed %d sessions, want %d", got, tt.closed)
			}
		})
	}
	ss := newSessions(Limits{MaxChanges: 2})
	ss.add(change.User{Username: "alice"}, fileChange{path: "a.yaml"}, now)
	if closed := ss.add(change.User{Username: "alice"}, fileChange{path: "b.yaml"}, now); len(closed) != 1 || len(closed[0].order) != 2 {
		t.Fatalf("a full session did not close with both files: %v", closed)
	}
}

func TestAuthorOf_mappingAndDomain(t *testing.T) {
	tests := []struct {
		user      string
		wantName  string
		wantEmail string
	}{
		{"alice", "Alice Liddell", "alice@wonderland.example"},
		{"bob", "bob", "bob@corp.example"},
		{"system:serviceaccount:ci:deployer", "system:serviceaccount:ci:deployer", "system.serviceaccount.ci.deployer@corp.example"},
		{"carol@corp.example", "carol@corp.example", "carol@corp.example"},
		{"", "unknown", "unknown@corp.example"},
		{"eve\nReverser-User: alice", `"eve\nReverser-User: alice"`, "eve.nReverser-User.alice@corp.example"},
		{"nul\x00", `"nul\x00"`, "nul.x00@corp.example"},
		{"bad\xff@corp.example", `"bad\xff@corp.example"`, "bad.xff.corp.example@corp.example"},
	}
	spec := commitSpec()
	for _, tt := range tests {
		got := authorOf(change.User{Username: tt.user}, spec)
		if got.Name != tt.wantName || got.Email != tt.wantEmail {
			t.Errorf("authorOf(%q) = %+v, want %s <%s>", tt.user, got, tt.wantName, tt.wantEmail)
		}
	}
}

func TestTarget_place_movesAndSharedPaths(t *testing.T) {
	tg := &target{}
	ruleA := placementKey{rule: rules.Key{Kind: rules.KindWatchRule, Namespace: "shop", Name: "a"}, namespace: "shop", name: "web"}
	ruleB := ruleA
	ruleB.rule.Name = "b"
	steps := []struct {
		name  string
		key   placementKey
		f     fileChange
		moved string
	}{
		{"first write", ruleA, fileChange{path: "p1.yaml"}, ""},
		{"same path again", ruleA, fileChange{path: "p1.yaml"}, ""},
		{"layout moves the object", ruleA, fileChange{path: "p2.yaml"}, "p1.yaml"},
		{"another rule writes the same object to the same path", ruleB, fileChange{path: "p2.yaml"}, ""},
		{"a move leaves a path another rule still holds", ruleA, fileChange{path: "p3.yaml"}, ""},
		{"delete at the placed path", ruleA, fileChange{path: "p3.yaml", delete: true}, ""},
		{"delete elsewhere also removes the placed path", ruleB, fileChange{path: "p9.yaml", delete: true}, "p2.yaml"},
		{"after a delete the object starts afresh", ruleA, fileChange{path: "p4.yaml"}, ""},
	}
	for _, s := range steps {
		if got := tg.place(s.key, s.f); got != s.moved {
			t.Fatalf("%s: place = %q, want %q", s.name, got, s.moved)
		}
	}
	if len(tg.holders) != 1 || tg.holders["p4.yaml"] != 1 {
		t.Fatalf("holders = %v, want only p4.yaml once", tg.holders)
	}
}
