package c2s

// ParkedHolding reports how many sessions are parked and how many of them
// still hold a read buffer, which parking gives back.
func (s *Server) ParkedHolding() (parked, holding int) {
	if s.lot == nil {
		return 0, 0
	}
	s.lot.mu.Lock()
	defer s.lot.mu.Unlock()
	for _, sess := range s.lot.parked {
		parked++
		if sess.conn.rbuf != nil {
			holding++
		}
	}
	return parked, holding
}
