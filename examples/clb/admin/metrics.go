package admin

import (
	"strconv"

	"github.com/lbkit/lbkit/listener"
	"github.com/prometheus/client_golang/prometheus"
)

// Label names of the listener and backend series.
var (
	listenerLabels = []string{"listener", "protocol", "port"}
	backendLabels  = []string{"listener", "backend"}
)

func desc(name, help string, labels []string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), labels...), extra...), nil)
}

// collector is a prometheus.Collector over an instance. It reads the
// listeners' Stats and groups when scraped and keeps no state of its own,
// so the proxy's hot path never touches Prometheus.
type collector struct {
	inst *listener.Instance

	info *prometheus.Desc

	up, bandwidth, active, total, bytes, refused, connFail,
	noBackend, dropped, drained, idleResets, requests, upstream, proxyRefused *prometheus.Desc

	bUp, bWeight, bStandby, bActive, bTotal, bBytes, bConnFail,
	bRequests, bUpstream *prometheus.Desc
}

// NewCollector returns a prometheus.Collector exporting the counters of
// inst's listeners and their backends, read at scrape time. Server
// registers one on its private registry; use NewCollector to add the same
// series to a registry of your own.
//
// Listener series are labelled listener, protocol and port; backend series
// listener and backend (the backend's ID). Backend series exist for every
// member of the listener's group and every backend with counters through
// the listener; lbkit_backend_up, _weight and _standby for members only.
// Request and upstream latency series exist for HTTP and HTTPS listeners.
func NewCollector(inst *listener.Instance) prometheus.Collector {
	l, b := listenerLabels, backendLabels
	return &collector{
		inst: inst,
		info: prometheus.NewDesc("lbkit_instance_info", "The load-balancer instance: its ID and service address; always 1.", []string{"instance", "address"}, nil),

		up:         desc("lbkit_listener_up", "Whether the listener is running (1) or stopped (0).", l),
		bandwidth:  desc("lbkit_listener_bandwidth_limit_mbps", "The listener's bandwidth cap in Mbps per direction; 0 if uncapped.", l),
		active:     desc("lbkit_listener_connections_active", "Client connections (UDP: flows) open now.", l),
		total:      desc("lbkit_listener_connections_total", "Client connections (UDP: flows) opened.", l),
		bytes:      desc("lbkit_listener_bytes_total", "Bytes proxied; direction in is client to backend, out backend to client.", l, "direction"),
		refused:    desc("lbkit_listener_refused_acl_total", "Connections closed or datagrams dropped by the ACL.", l),
		connFail:   desc("lbkit_listener_connect_failures_total", "Failed backend connection attempts.", l),
		noBackend:  desc("lbkit_listener_no_backend_total", "Clients turned away because no backend was available.", l),
		dropped:    desc("lbkit_listener_dropped_total", "Datagrams dropped: malformed, oversized, beyond the flow table or over the bandwidth cap.", l),
		drained:    desc("lbkit_listener_drained_total", "Connections closed by connection drain.", l),
		idleResets: desc("lbkit_listener_idle_resets_total", "Connections reset by the idle timeout.", l),
		requests:   desc("lbkit_listener_requests_total", "HTTP responses by status class.", l, "class"),
		upstream:   desc("lbkit_listener_upstream_latency_seconds", "Time from sending requests to backends to receiving their response headers.", l),
		proxyRefused: desc("lbkit_listener_proxy_refused_total",
			"Connections from a trusted balancer reset for their PROXY header: malformed, or missing where required.", l),

		bUp:       desc("lbkit_backend_up", "Whether the backend is healthy (1) or not (0).", b),
		bWeight:   desc("lbkit_backend_weight", "The backend's weight as the CLB reports it, 0–100: 0 while it drains or is in maintenance.", b),
		bStandby:  desc("lbkit_backend_standby", "Whether the backend is in the standby tier (1) or the primary tier (0).", b),
		bActive:   desc("lbkit_backend_connections_active", "Connections to the backend open now (HTTP: requests in flight).", b),
		bTotal:    desc("lbkit_backend_connections_total", "Connections made to the backend (HTTP: requests sent).", b),
		bBytes:    desc("lbkit_backend_bytes_total", "Bytes proxied to and from the backend; direction in is client to backend.", b, "direction"),
		bConnFail: desc("lbkit_backend_connect_failures_total", "Failed connection attempts to the backend.", b),
		bRequests: desc("lbkit_backend_requests_total", "HTTP responses from the backend by status class.", b, "class"),
		bUpstream: desc("lbkit_backend_upstream_latency_seconds", "Time from sending requests to the backend to receiving its response headers.", b),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info,
		c.up, c.bandwidth, c.active, c.total, c.bytes, c.refused, c.connFail,
		c.noBackend, c.dropped, c.drained, c.idleResets, c.requests, c.upstream, c.proxyRefused,
		c.bUp, c.bWeight, c.bStandby, c.bActive, c.bTotal, c.bBytes, c.bConnFail,
		c.bRequests, c.bUpstream} {
		ch <- d
	}
}

var classNames = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	summary := func(d *prometheus.Desc, count uint64, sum float64, lv ...string) {
		ch <- prometheus.MustNewConstSummary(d, count, sum, nil, lv...)
	}

	addr := ""
	if a := c.inst.Address(); a.IsValid() {
		addr = a.String()
	}
	gauge(c.info, 1, c.inst.ID(), addr)

	for _, l := range c.inst.Listeners() {
		s := l.Stats()
		lv := []string{s.Name, string(s.Protocol), strconv.Itoa(s.Port)}
		web := isHTTP(s.Protocol)

		gauge(c.up, b2f(s.State == listener.Running), lv...)
		gauge(c.bandwidth, float64(l.Bandwidth()), lv...)
		gauge(c.active, float64(s.Active), lv...)
		counter(c.total, s.New, lv...)
		counter(c.bytes, s.BytesIn, append(lv, "in")...)
		counter(c.bytes, s.BytesOut, append(lv, "out")...)
		counter(c.refused, s.RefusedACL, lv...)
		counter(c.connFail, s.ConnectFailures, lv...)
		counter(c.noBackend, s.NoBackend, lv...)
		counter(c.dropped, s.Dropped, lv...)
		counter(c.drained, s.Drained, lv...)
		counter(c.idleResets, s.IdleResets, lv...)
		counter(c.proxyRefused, s.ProxyRefused, lv...)
		if web {
			for i, n := range s.Status {
				counter(c.requests, n, append(lv, classNames[i])...)
			}
			summary(c.upstream, s.UpstreamResponses, s.Upstream.Seconds(), lv...)
		}

		seen := map[string]bool{}
		backend := func(id string) {
			seen[id] = true
			bv := []string{s.Name, id}
			bs := s.Backends[id] // zero until the backend carries traffic
			gauge(c.bActive, float64(bs.Active), bv...)
			counter(c.bTotal, bs.New, bv...)
			counter(c.bBytes, bs.BytesIn, append(bv, "in")...)
			counter(c.bBytes, bs.BytesOut, append(bv, "out")...)
			counter(c.bConnFail, bs.ConnectFailures, bv...)
			if web {
				for i, n := range bs.Status {
					counter(c.bRequests, n, append(bv, classNames[i])...)
				}
				summary(c.bUpstream, bs.UpstreamResponses, bs.Upstream.Seconds(), bv...)
			}
		}
		if g := l.Group(); g != nil {
			for _, m := range g.Members() {
				bv := []string{s.Name, m.ID()}
				gauge(c.bUp, b2f(m.Healthy()), bv...)
				gauge(c.bWeight, float64(clbWeight(m)), bv...)
				gauge(c.bStandby, b2f(m.Standby()), bv...)
				backend(m.ID())
			}
		}
		for id := range s.Backends {
			if !seen[id] {
				backend(id)
			}
		}
	}
}
