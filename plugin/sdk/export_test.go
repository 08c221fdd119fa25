package sdk

// ClientGoroutines returns how many of the goroutines c started are still
// running.
func ClientGoroutines(c *Client) int { return int(c.running.Load()) }

// ForgetHookStream makes c take its middleware for one built before the
// Hooks stream: its hooks are then called with the unary Hook.
func ForgetHookStream(c *Client) {
	c.mu.Lock()
	c.mwCaps = nil
	c.mu.Unlock()
}

// UsesHookStream reports whether a middleware shim of a Client calls its
// hooks over the Hooks stream.
func UsesHookStream(m Middleware) bool {
	rm, ok := m.(*remoteMiddleware)
	return ok && rm.stream != nil
}

// SettlesInFlight returns how many Settle messages of a host-side delivery
// stream wait for the plugin to confirm them.
func SettlesInFlight(s Stream) int {
	rs := s.(*remoteStream)
	rs.sendMu.Lock()
	defer rs.sendMu.Unlock()
	return len(rs.unapplied)
}
