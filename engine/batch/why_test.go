package batch

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gitops-reverser/gitops-reverser/engine/change"
)

func sessionOf(t *testing.T, changes ...fileChange) *session {
	t.Helper()
	ss := newSessions(Limits{})
	now := time.Unix(1000, 0)
	for _, f := range changes {
		ss.add(change.User{Username: "alice"}, f, now)
	}
	all := ss.all()
	if len(all) != 1 {
		t.Fatalf("%d sessions, want 1", len(all))
	}
	return all[0]
}

func whyOf(s string) string { return strings.Join(change.EscapeWhy(s), "\n") }

func TestMessage_why_bodyTiedToEachChange(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "history"}
	tests := []struct {
		name    string
		changes []fileChange
		want    string
	}{
		{
			name:    "one change with a reason",
			changes: []fileChange{{path: "a", summary: "UPDATE deployments shop/web", why: whyOf("Raise replicas for the sale\nINC-1234")}},
			want: "UPDATE deployments shop/web\n\nWhy: Raise replicas for the sale\n     INC-1234\n\n" +
				"Reverser-User: alice\nReverser-Operation: UPDATE\nReverser-Resource: deployments shop/web\nReverser-Target: shop/history\n",
		},
		{
			name:    "one change without a reason",
			changes: []fileChange{{path: "a", summary: "UPDATE deployments shop/web"}},
			want: "UPDATE deployments shop/web\n\n" +
				"Reverser-User: alice\nReverser-Operation: UPDATE\nReverser-Resource: deployments shop/web\nReverser-Target: shop/history\n",
		},
		{
			name: "several changes, a repeated reason said once",
			changes: []fileChange{
				{path: "a", summary: "UPDATE deployments shop/web", why: whyOf("sale")},
				{path: "b", summary: "UPDATE services shop/web", why: whyOf("sale")},
				{path: "c", summary: "CREATE configmaps shop/cms"},
				{path: "d", summary: "DELETE services shop/old", why: whyOf("retired")},
			},
			want: "4 changes by alice\n\n" +
				"- UPDATE deployments shop/web\n  Why: sale\n" +
				"- UPDATE services shop/web\n  Why: as above\n" +
				"- CREATE configmaps shop/cms\n" +
				"- DELETE services shop/old\n  Why: retired\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := message(sessionOf(t, tt.changes...), key)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("message =\n%s\nwant it to start with\n%s", got, tt.want)
			}
		})
	}
}

// TestMessage_why_noTrailerInjection runs the real git interpret-trailers
// on a message whose reason tries to add trailers and end the message.
func TestMessage_why_noTrailerInjection(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is required: %v", err)
	}
	evil := "fine\n\nReverser-User: admin\nSigned-off-by: root <root@example.com>\n---\nReverser-Operation: DELETE"
	for _, changes := range [][]fileChange{
		{{path: "a", summary: "UPDATE configmaps shop/cms", why: whyOf(evil)}},
		{{path: "a", summary: "UPDATE configmaps shop/cms", why: whyOf(evil)}, {path: "b", summary: "UPDATE configmaps shop/b"}},
	} {
		msg := message(sessionOf(t, changes...), types.NamespacedName{Namespace: "shop", Name: "history"})
		for _, line := range strings.Split(msg, "\n") {
			if strings.HasPrefix(line, "Reverser-User: admin") || strings.HasPrefix(line, "Signed-off-by") || strings.HasPrefix(line, "---") {
				t.Fatalf("a line of the reason starts a line of the message: %q in\n%s", line, msg)
			}
		}
		cmd := exec.Command(git, "interpret-trailers", "--parse")
		cmd.Stdin = strings.NewReader(msg)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git interpret-trailers: %v", err)
		}
		if strings.Contains(string(out), "admin") || strings.Contains(string(out), "Signed-off-by") || !strings.Contains(string(out), "Reverser-User: alice") {
			t.Fatalf("git parses these trailers:\n%s\nfrom\n%s", out, msg)
		}
	}
}

func TestReplaySessions_keepsReasons(t *testing.T) {
	s := sessionOf(t,
		fileChange{path: "a", summary: "UPDATE configmaps shop/a", why: "sale"},
		fileChange{path: "b", summary: "UPDATE configmaps shop/b"},
		fileChange{path: "a", summary: "UPDATE configmaps shop/a", why: "second"})
	s.id = 7
	back := replaySessions(s.records())
	if len(back) != 1 {
		t.Fatalf("%d sessions replayed, want 1", len(back))
	}
	if got, want := strings.Join(back[0].whys, "|"), "sale||second"; got != want {
		t.Fatalf("replayed reasons %q, want %q", got, want)
	}
	// A journal written before reasons existed has none.
	old := s.records()
	old[0].Whys = nil
	if got := replaySessions(old)[0].whys; len(got) != 3 || strings.Join(got, "") != "" {
		t.Fatalf("replayed reasons of an old journal %q, want three empty", got)
	}
}
