package admin

import (
	"sort"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
)

// Status is the document served at /status.json: a snapshot of an
// instance and every listener it owns. The page at / renders it.
type Status struct {
	// Instance is the instance ID; Address its service address, empty if
	// it has none.
	Instance string `json:"instance"`
	Address  string `json:"address,omitempty"`
	// Time is when the snapshot was taken.
	Time      time.Time        `json:"time"`
	Listeners []ListenerStatus `json:"listeners"`
	// Config is where the configuration comes from; nil unless
	// Options.Config is set.
	Config *ConfigStatus `json:"config,omitempty"`
	// Discovery lists the DNS sources feeding server groups; empty
	// unless Options.Discovery is set and some group is fed from DNS.
	Discovery []DiscoveryStatus `json:"discovery,omitempty"`
	// Process is which process serves and what configuration it runs;
	// nil unless Options.Process is set.
	Process *ProcessStatus `json:"process,omitempty"`
}

// ListenerStatus is one listener's configuration summary and counters
// (see listener.Stats for what each counter counts).
type ListenerStatus struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	// State is "running" or "stopped".
	State string `json:"state"`
	// Bandwidth is the listener's cap in Mbps, 0 if uncapped.
	Bandwidth int `json:"bandwidth_mbps"`

	// Active and New count client connections (UDP: flows) open now and
	// opened in all.
	Active          int64  `json:"active"`
	New             uint64 `json:"new"`
	BytesIn         uint64 `json:"bytes_in"`
	BytesOut        uint64 `json:"bytes_out"`
	RefusedACL      uint64 `json:"refused_acl"`
	ConnectFailures uint64 `json:"connect_failures"`
	NoBackend       uint64 `json:"no_backend"`
	Dropped         uint64 `json:"dropped"`
	Drained         uint64 `json:"drained"`
	IdleResets      uint64 `json:"idle_resets"`
	ProxyRefused    uint64 `json:"proxy_refused"` // PROXY headers refused

	// Requests counts responses by status class; nil except for HTTP
	// and HTTPS listeners.
	Requests *Classes `json:"requests,omitempty"`
	// UpstreamLatencyMS is the mean time backends took to send a
	// response header, in milliseconds (HTTP and HTTPS; 0 before the
	// first response).
	UpstreamLatencyMS float64 `json:"upstream_latency_ms,omitempty"`

	// Backends lists the members of the listener's group, sorted by ID,
	// then any other backend that has counters through this listener
	// (Member false).
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is one backend as a listener sees it: its membership in
// the listener's group and its counters through that listener.
type BackendStatus struct {
	ID   string `json:"id"`
	Addr string `json:"addr,omitempty"`
	// Member reports whether the backend is in the listener's group now.
	// A backend that is not — one removed since it carried traffic, or
	// one of a forwarding rule's group — has counters but no Weight,
	// Standby or Healthy.
	Member bool `json:"member"`
	// Weight is the CLB's: 0 while the backend drains or is in
	// maintenance, whose State then says which.
	Weight  int    `json:"weight"`
	State   string `json:"state,omitempty"`
	Standby bool   `json:"standby,omitempty"`
	Healthy bool   `json:"healthy"`

	// Active and New count this listener's connections (HTTP and HTTPS:
	// requests) to the backend in flight and sent in all.
	Active          int64    `json:"active"`
	New             uint64   `json:"new"`
	BytesIn         uint64   `json:"bytes_in"`
	BytesOut        uint64   `json:"bytes_out"`
	ConnectFailures uint64   `json:"connect_failures"`
	Requests        *Classes `json:"requests,omitempty"`
	// UpstreamLatencyMS is as for ListenerStatus.
	UpstreamLatencyMS float64 `json:"upstream_latency_ms,omitempty"`
}

// Classes counts HTTP responses by status class.
type Classes struct {
	Info        uint64 `json:"1xx"`
	Success     uint64 `json:"2xx"`
	Redirect    uint64 `json:"3xx"`
	ClientError uint64 `json:"4xx"`
	ServerError uint64 `json:"5xx"`
}

func classes(s [5]uint64) *Classes {
	return &Classes{Info: s[0], Success: s[1], Redirect: s[2], ClientError: s[3], ServerError: s[4]}
}

func isHTTP(p listener.Protocol) bool { return p == listener.HTTP || p == listener.HTTPS }

func millis(d time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / float64(n) / float64(time.Millisecond)
}

// snapshot reads every listener's Stats and group once.
func snapshot(inst *listener.Instance, now time.Time) Status {
	st := Status{Instance: inst.ID(), Time: now, Listeners: []ListenerStatus{}}
	if a := inst.Address(); a.IsValid() {
		st.Address = a.String()
	}
	for _, l := range inst.Listeners() {
		st.Listeners = append(st.Listeners, listenerStatus(l))
	}
	return st
}

func listenerStatus(l *listener.Listener) ListenerStatus {
	s := l.Stats()
	ls := ListenerStatus{
		Name:            s.Name,
		Protocol:        string(s.Protocol),
		Port:            s.Port,
		State:           s.State.String(),
		Bandwidth:       l.Bandwidth(),
		Active:          s.Active,
		New:             s.New,
		BytesIn:         s.BytesIn,
		BytesOut:        s.BytesOut,
		RefusedACL:      s.RefusedACL,
		ConnectFailures: s.ConnectFailures,
		NoBackend:       s.NoBackend,
		Dropped:         s.Dropped,
		Drained:         s.Drained,
		ProxyRefused:    s.ProxyRefused,
		IdleResets:      s.IdleResets,
		Backends:        []BackendStatus{},
	}
	web := isHTTP(s.Protocol)
	if web {
		ls.Requests = classes(s.Status)
		ls.UpstreamLatencyMS = millis(s.Upstream, s.UpstreamResponses)
	}
	counted := func(b *BackendStatus) {
		bs, ok := s.Backends[b.ID]
		if !ok {
			if web {
				b.Requests = &Classes{}
			}
			return
		}
		b.Active, b.New = bs.Active, bs.New
		b.BytesIn, b.BytesOut = bs.BytesIn, bs.BytesOut
		b.ConnectFailures = bs.ConnectFailures
		if web {
			b.Requests = classes(bs.Status)
			b.UpstreamLatencyMS = millis(bs.Upstream, bs.UpstreamResponses)
		}
	}
	members := map[string]bool{}
	if g := l.Group(); g != nil {
		for _, m := range g.Members() {
			members[m.ID()] = true
			b := BackendStatus{ID: m.ID(), Addr: m.Addr(), Member: true,
				Weight: clbWeight(m), State: m.State().String(), Standby: m.Standby(), Healthy: m.Healthy()}
			counted(&b)
			ls.Backends = append(ls.Backends, b)
		}
	}
	var others []string
	for id := range s.Backends {
		if !members[id] {
			others = append(others, id)
		}
	}
	sort.Strings(others)
	for _, id := range others {
		b := BackendStatus{ID: id}
		counted(&b)
		ls.Backends = append(ls.Backends, b)
	}
	return ls
}

// clbWeight is a member's weight as the CLB reports it: 0 while it drains
// or is in maintenance (the library keeps its weight for when it is ready
// again).
func clbWeight(m *balancer.Member) int {
	if m.State() != balancer.Ready {
		return 0
	}
	return m.Weight()
}
