package session

// ClientMem returns what s counts in the registry's total for its
// client's sends, and that amount recomputed from what s holds; the two
// must agree.
func ClientMem(s *Session) (counted, held int64) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	for _, c := range s.frag.chunks {
		held += pieceCost(c)
	}
	for _, h := range s.held {
		held += pieceCost(h.data)
	}
	return s.clientMem, held
}
