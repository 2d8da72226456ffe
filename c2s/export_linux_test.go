package c2s

// SessionsWithoutSendRoom counts bound sessions that could never be
// written to by a delivering goroutine (no socket found under their
// connection).
func (s *Server) SessionsWithoutSendRoom() (sessions, without int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		sess.mu.Lock()
		started := sess.started
		sess.mu.Unlock()
		if !started {
			continue
		}
		sessions++
		if sess.sock.raw == nil {
			without++
		}
	}
	return sessions, without
}
