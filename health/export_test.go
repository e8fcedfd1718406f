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
