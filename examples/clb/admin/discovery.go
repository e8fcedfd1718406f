package admin

import "github.com/prometheus/client_golang/prometheus"

// DiscoveryStatus is one DNS source keeping a server group's members in
// step with a name (package discovery): which listener and group it
// feeds, the name, and its counters. A failed or empty answer keeps the
// last good members; Failures and Empty say how often that happened.
// It is served in the "discovery" list of /status.json and as the
// clb_discovery_* metrics.
type DiscoveryStatus struct {
	// Listener is the listener whose group the source feeds, and Group
	// that group: "default" for the listener's own, "rule N" for its Nth
	// forwarding rule's (from 1).
	Listener string `json:"listener"`
	Group    string `json:"group"`
	// Name and Type are the DNS name and record type (A or SRV).
	Name string `json:"name"`
	Type string `json:"type"`
	// Members counts the members of the last good answer.
	Members int `json:"members"`
	// Lookups, Updates, Failures and Empty count the lookups made, those
	// that changed the members, those that failed, and those that found
	// no address.
	Lookups  uint64 `json:"lookups"`
	Updates  uint64 `json:"updates"`
	Failures uint64 `json:"failures"`
	Empty    uint64 `json:"empty"`
}

// discoveryCollector exports DiscoveryStatus values read at scrape time.
type discoveryCollector struct {
	status                                     func() []DiscoveryStatus
	members, lookups, updates, failures, empty *prometheus.Desc
}

func newDiscoveryCollector(status func() []DiscoveryStatus) *discoveryCollector {
	l := []string{"listener", "group", "name"}
	return &discoveryCollector{
		status:   status,
		members:  desc("clb_discovery_members", "Members of the last good DNS answer feeding the group.", l),
		lookups:  desc("clb_discovery_lookups_total", "DNS lookups made for the group.", l),
		updates:  desc("clb_discovery_updates_total", "DNS lookups whose answer changed the group's members.", l),
		failures: desc("clb_discovery_failures_total", "DNS lookups that failed; the last good members stayed.", l),
		empty:    desc("clb_discovery_empty_total", "DNS lookups that found no address; the last good members stayed.", l),
	}
}

// Describe implements prometheus.Collector.
func (c *discoveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.lookups, c.updates, c.failures, c.empty} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *discoveryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.status() {
		l := []string{s.Listener, s.Group, s.Name}
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(s.Members), l...)
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(s.Lookups), l...)
		ch <- prometheus.MustNewConstMetric(c.updates, prometheus.CounterValue, float64(s.Updates), l...)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures), l...)
		ch <- prometheus.MustNewConstMetric(c.empty, prometheus.CounterValue, float64(s.Empty), l...)
	}
}
