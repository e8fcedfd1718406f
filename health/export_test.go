package health

import "time"

// SetTimeoutForTest shortens the probe timeout below the 1s that Config
// allows, so that tests of timeouts run in milliseconds. Call it before
// any probe.
func SetTimeoutForTest(c *Checker, d time.Duration) { c.cfg.Timeout = d }

// NextProbesForTest returns each target's next scheduled probe.
func NextProbesForTest(c *Checker) map[string]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]time.Time{}
	for id, t := range c.targets {
		m[id] = t.next
	}
	return m
}

// DueForTest takes the targets due at now as the scheduled loop does
// (their probes are not run) and returns their IDs.
func DueForTest(c *Checker, now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	due, _ := c.dueLocked(now)
	ids := make([]string, len(due))
	for i, t := range due {
		t.running = false
		ids[i] = t.ID
	}
	return ids
}
