package health

import (
	"strconv"
	"time"
)

// ReportFailure tells the Checker that a real connection or request to
// target id failed (connect refused or timed out, reset, 5xx from the
// backend — whatever the listener counts). Config.Passive.Failures
// failures in a row, with no ReportSuccess between, eject the target:
// it is reported unhealthy for Passive.EjectTime (growing with each
// ejection in a row, up to Passive.MaxEjectTime), whatever the active
// probes say, as long as no more than Passive.MaxEjectedPercent of the
// targets are ejected. With passive checking off, or for an unknown id,
// ReportFailure does nothing. It never blocks on the network.
func (c *Checker) ReportFailure(id string) {
	c.mu.Lock()
	now := c.now()
	c.releaseLocked(now)
	t, ok := c.targets[id]
	p := c.cfg.Passive
	if !ok || c.stopped || p.Failures == 0 || t.ejected {
		c.mu.Unlock()
		return
	}
	t.passiveFails++
	if t.passiveFails >= p.Failures && c.mayEjectLocked() {
		t.ejections++
		d := min(p.EjectTime*time.Duration(t.ejections), p.MaxEjectTime)
		t.ejected, t.ejectedUntil = true, now.Add(d)
		c.nEjected++
		c.notifyLocked(t, Event{
			Target: t.Target, From: t.state, To: t.state, Count: t.passiveFails, At: now,
			Reason: "ejected for " + d.String() + " after " + strconv.Itoa(t.passiveFails) + " failures",
		})
		t.passiveFails = 0
	}
	c.mu.Unlock()
	c.flush()
	c.poke() // the loop wakes when the ejection ends
}

// ReportSuccess tells the Checker that a real connection or request to
// target id succeeded: the run of failures toward an ejection starts over,
// and so does the growth of the eject time, unless the target is ejected
// now. For an unknown id it does nothing.
func (c *Checker) ReportSuccess(id string) {
	if c.cfg.Passive.Failures == 0 {
		return // called for every good connection: keep it free when off
	}
	c.mu.Lock()
	c.releaseLocked(c.now())
	if t, ok := c.targets[id]; ok {
		t.passiveFails = 0
		if !t.ejected {
			t.ejections = 0
		}
	}
	c.mu.Unlock()
	c.flush()
}

// mayEjectLocked reports whether one more target may be ejected.
func (c *Checker) mayEjectLocked() bool {
	n := c.nEjected
	return n == 0 || (n+1)*100 <= c.cfg.Passive.MaxEjectedPercent*len(c.targets)
}

// releaseLocked ends the ejections due by now.
func (c *Checker) releaseLocked(now time.Time) {
	if c.stopped || c.nEjected == 0 {
		return
	}
	for _, id := range c.ids {
		t := c.targets[id]
		if t.ejected && !now.Before(t.ejectedUntil) {
			t.ejected = false
			c.nEjected--
			c.notifyLocked(t, Event{Target: t.Target, From: t.state, To: t.state, Reason: "ejection ended", At: now})
		}
	}
}
