package sdk

// ClientGoroutines returns how many of the goroutines c started are still
// running.
func ClientGoroutines(c *Client) int { return int(c.running.Load()) }
