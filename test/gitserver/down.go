package gitserver

import (
	"net/http"
	"strings"
)

// SetDown makes the HTTP endpoint answer every request for repo with 503
// Service Unavailable (down true) or serve it again (down false), as a
// remote in an outage does. SSH is not affected.
func (s *Server) SetDown(repo string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down == nil {
		s.down = map[string]bool{}
	}
	s.down[strings.Trim(repo, "/")] = down
}

// refuseIfDown answers 503 and returns true when r is for a repository
// that is down.
func (s *Server) refuseIfDown(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for repo, down := range s.down {
		if down && strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/"), repo+"/") {
			http.Error(w, "repository unavailable", http.StatusServiceUnavailable)
			return true
		}
	}
	return false
}
