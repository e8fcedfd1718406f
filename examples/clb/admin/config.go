package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConfigStatus is where a load balancer's configuration comes from and
// how current it is: the source (an etcd URL, say), whether the source
// answers, the revision of the configuration running now and the last
// error. A replica cut off from its source keeps running the
// configuration it has; ConfigStatus is how it says so. It is served as
// the "config" object of /status.json, on the page's header line and as
// the clb_config_* metrics.
//
// The zero value is a source that never answered, with nothing applied.
type ConfigStatus struct {
	// Source names the source, e.g. etcd://127.0.0.1:2379/lb.
	Source string `json:"source"`
	// Connected reports whether the source answered its last check.
	Connected bool `json:"connected"`
	// Since is when Connected last changed.
	Since time.Time `json:"since"`
	// Revision is the source's revision of the configuration running
	// now (etcd: the store revision it was read at).
	Revision int64 `json:"revision"`
	// Seen is the newest revision read from the source; above Revision
	// when the newest configuration was refused.
	Seen int64 `json:"seen"`
	// Refused counts configurations read from the source and refused
	// (invalid, or failing to apply).
	Refused uint64 `json:"refused"`
	// Error is the last error, of the source or of a refused
	// configuration, and ErrorTime when it happened; empty if none.
	Error     string    `json:"error,omitempty"`
	ErrorTime time.Time `json:"error_time,omitzero"`
}

// configCollector exports a ConfigStatus read at scrape time.
type configCollector struct {
	status                func() ConfigStatus
	up, revision, refused *prometheus.Desc
}

func newConfigCollector(status func() ConfigStatus) *configCollector {
	src := []string{"source"}
	return &configCollector{
		status:   status,
		up:       desc("clb_config_source_up", "Whether the configuration source answered its last check (1) or not (0); while 0 the last good configuration keeps running.", src),
		revision: desc("clb_config_revision", "The source's revision of the configuration running now.", src),
		refused:  desc("clb_config_refused_total", "Configurations read from the source and refused; the previous one kept running.", src),
	}
}

// Describe implements prometheus.Collector.
func (c *configCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.revision
	ch <- c.refused
}

// Collect implements prometheus.Collector.
func (c *configCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(s.Connected), s.Source)
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(s.Revision), s.Source)
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.Refused), s.Source)
}
