package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProcessStatus is which process serves and what it runs: its PID, when
// it started, its upgrade generation and the version of the
// configuration it applied last. Replicas reporting the same
// ConfigVersion run the same configuration; after an upgrade the
// successor reports a Generation one above its parent's. It is served as
// the "process" object of /status.json, on the page's header and as the
// clb_config_info, clb_process_start_time_seconds and
// clb_upgrade_generation metrics.
//
// The zero value is a process of generation 0 that has applied nothing.
type ProcessStatus struct {
	PID int `json:"pid"`
	// Started is when the process started.
	Started time.Time `json:"started"`
	// Generation counts the binary upgrades that led to this process: 0
	// for a process started normally, its parent's plus one for an
	// upgrade's successor.
	Generation int `json:"generation"`
	// ConfigVersion names the configuration applied last (a hash of
	// what it was read from); it changes when a reload applies and not
	// when one is refused. Empty before the first one applies.
	ConfigVersion string `json:"config_version"`
	// ConfigApplied is when the configuration ConfigVersion names was
	// applied.
	ConfigApplied time.Time `json:"config_applied,omitzero"`
	// ReloadsRefused counts configurations a reload refused — by
	// SIGHUP, PUT /api/config or a configuration source — as invalid or
	// failing to apply, while the previous one kept running.
	ReloadsRefused uint64 `json:"reloads_refused"`
}

// processCollector exports a ProcessStatus read at scrape time.
type processCollector struct {
	status                             func() ProcessStatus
	info, started, generation, refused *prometheus.Desc
}

func newProcessCollector(status func() ProcessStatus) *processCollector {
	return &processCollector{
		status:     status,
		info:       desc("clb_config_info", "The version of the configuration running now (a hash of what it was read from); always 1.", []string{"version"}),
		started:    desc("clb_process_start_time_seconds", "When the process started, in seconds since the Unix epoch.", nil),
		generation: desc("clb_upgrade_generation", "Binary upgrades that led to this process: 0 if it was started normally.", nil),
		refused:    desc("clb_reloads_refused_total", "Configurations a reload (SIGHUP, PUT /api/config, a configuration source) refused as invalid or failing to apply; the previous one kept running.", nil),
	}
}

// Describe implements prometheus.Collector.
func (c *processCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.started
	ch <- c.generation
	ch <- c.refused
}

// Collect implements prometheus.Collector.
func (c *processCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, s.ConfigVersion)
	ch <- prometheus.MustNewConstMetric(c.started, prometheus.GaugeValue, float64(s.Started.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(s.Generation))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.ReloadsRefused))
}
