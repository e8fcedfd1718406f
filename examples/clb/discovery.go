package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/discovery"
	"github.com/lbkit/lbkit/examples/clb/admin"
)

// Discovery names a DNS name whose records are a server group's members
// instead of a list of servers (a clb extension beyond the CLB): with
// Type A each address of Name on Port, with Type SRV each address of each
// target on the record's port and weight, the lowest priority value the
// primary (master) tier and the others the standby (slave) tier.
type Discovery struct {
	Name     string // e.g. api.svc.example, or _http._tcp.api.svc.example for SRV
	Type     string // A (default: A and AAAA records) or SRV
	Port     int    // the members' port with Type A; not with SRV
	Family   string // ipv4, ipv6, or omitted for both
	Resolver string // DNS server as IP or IP:port; default /etc/resolv.conf's first nameserver
	MinTTL   int    // seconds; the shortest wait between lookups, default 1
	MaxTTL   int    // seconds; the longest wait, default 300
	pos
}

// discoveryTimeout bounds the first lookup of a listener's source, made
// before the listener starts so that it starts with members.
const discoveryTimeout = discovery.DefaultTimeout

// checkDiscovery validates a group's Discovery at path; servers is how
// many servers the group also lists (it may list none).
func checkDiscovery(ps *problems, path string, d *Discovery, servers int) {
	c := checker{ps: ps, path: path, p: d.pos}
	before := len(ps.list)
	if servers > 0 {
		ps.add(d.line, path, "a group takes its members from Discovery or from its server list, not both")
	}
	c.required("Name", d.Name)
	c.oneOf("Type", d.Type, "A", "SRV")
	switch {
	case d.Type == "SRV" && (d.Port != 0 || d.given("Port")):
		c.bad("Port", "not with Type SRV: the records carry the port")
	case d.Type != "SRV" && d.Port == 0 && !d.given("Port"):
		c.bad("Port", "required with Type A")
	case d.Type != "SRV":
		c.inRange("Port", d.Port, portRange)
	}
	c.oneOf("Family", d.Family, "ipv4", "ipv6")
	if d.Resolver != "" {
		if _, err := netip.ParseAddrPort(d.Resolver); err != nil {
			if _, err := netip.ParseAddr(d.Resolver); err != nil {
				c.bad("Resolver", "%q: want an IP address, with a port or without (53), e.g. 127.0.0.1:5353", d.Resolver)
			}
		}
	}
	for _, k := range []string{"MinTTL", "MaxTTL"} {
		if v := map[string]int{"MinTTL": d.MinTTL, "MaxTTL": d.MaxTTL}[k]; v != 0 || d.given(k) {
			c.inRange(k, v, discoveryTTLRange)
		}
	}
	if d.MinTTL != 0 && d.MaxTTL != 0 && d.MaxTTL < d.MinTTL {
		c.bad("MaxTTL", "%d below MinTTL %d", d.MaxTTL, d.MinTTL)
	}
	if len(ps.list) > before {
		return
	}
	// What only the library knows: a name that is not a domain name, no
	// resolver in /etc/resolv.conf.
	if _, err := discovery.NewDNS(d.dnsConfig(), noMembers{}); err != nil {
		key := "Name"
		if ce, ok := errors.AsType[*discovery.ConfigError](err); ok {
			key = ce.Field
		}
		c.lib(key, err)
	}
}

// String describes d for the start-up table: "dns SRV _http._tcp.api".
func (d *Discovery) String() string {
	return "dns " + cmp.Or(d.Type, "A") + " " + d.Name
}

// dnsConfig is the library's form of d.
func (d *Discovery) dnsConfig() discovery.DNSConfig {
	t, _ := discovery.ParseType(d.Type) // checked; omitted is A
	return discovery.DNSConfig{
		Name: d.Name, Type: t, Port: d.Port, Family: d.Family, Resolver: d.Resolver,
		MinTTL: sec(d.MinTTL), MaxTTL: sec(d.MaxTTL),
	}
}

// groupDiscovery maps each discovery-backed group to its Discovery:
// "v/ID" for VServerGroups, "ms/ID" for MasterSlaveServerGroups.
func groupDiscovery(f *File) map[string]*Discovery {
	m := map[string]*Discovery{}
	for _, g := range f.VServerGroups {
		if g.Discovery != nil {
			m["v/"+g.VServerGroupId] = g.Discovery
		}
	}
	for _, g := range f.MasterSlaveServerGroups {
		if g.Discovery != nil {
			m["ms/"+g.MasterSlaveServerGroupId] = g.Discovery
		}
	}
	return m
}

// planDiscovery records in s which of its groups DNS feeds.
func planDiscovery(s *lspec, discs map[string]*Discovery) {
	l := s.src
	switch {
	case l.VServerGroupId != "":
		s.disc = discs["v/"+l.VServerGroupId]
	case l.MasterSlaveServerGroupId != "":
		s.disc = discs["ms/"+l.MasterSlaveServerGroupId]
	}
	s.ruleDisc = nil
	for _, r := range l.Rules {
		s.ruleDisc = append(s.ruleDisc, discs["v/"+r.VServerGroupId])
	}
}

// noMembers is the membership of a source made only to validate its
// configuration.
type noMembers struct{}

func (noMembers) Replace([]balancer.Backend) error { return errors.New("not a group") }

// sources are the DNS sources of one running listener, one per group it
// feeds: its main group and each rule's. A nil entry is a group with
// configured members.
type sources struct {
	main  *discovery.DNS
	rules []*discovery.DNS
}

// close stops every source.
func (ss *sources) close() {
	if ss.main != nil {
		ss.main.Stop()
	}
	for _, s := range ss.rules {
		if s != nil {
			s.Stop()
		}
	}
}

// startSources starts the sources of the groups of s that DNS feeds,
// each after a first lookup so that the listener starts with members. A
// first lookup that fails is logged; the source keeps trying.
func (a *app) startSources(s *lspec) sources {
	ss := sources{main: a.newSource(s.name, s.disc, s.cfg.Group), rules: make([]*discovery.DNS, len(s.ruleDisc))}
	for i, d := range s.ruleDisc {
		ss.rules[i] = a.newSource(s.name, d, s.cfg.HTTP.Rules[i].Group)
	}
	return ss
}

// syncGroups brings the groups of the running listener r to s: a group
// DNS feeds keeps its source, and with it its members, when its
// Discovery is unchanged, and gets a new source otherwise; a group with
// configured members takes them.
func (a *app) syncGroups(r *running, s *lspec) error {
	var err error
	if r.src.main, err = a.syncGroup(s.name, r.l.Group(), r.spec.disc, s.disc, r.src.main, s.main); err != nil {
		return err
	}
	rules := make([]*discovery.DNS, len(r.rules))
	for i, g := range r.rules {
		var old *Discovery
		var src *discovery.DNS
		if i < len(r.spec.ruleDisc) {
			old, src = r.spec.ruleDisc[i], r.src.rules[i]
		}
		if rules[i], err = a.syncGroup(s.name, g, old, s.ruleDisc[i], src, s.rules[i]); err != nil {
			return err
		}
	}
	r.src.rules = rules
	return nil
}

// syncGroup brings one group from Discovery old (fed by src) to new, or
// to the configured members when new is nil, and returns its source.
func (a *app) syncGroup(name string, g *balancer.Group, old, new *Discovery, src *discovery.DNS, members []balancer.Backend) (*discovery.DNS, error) {
	if src != nil && new != nil && sameDiscovery(old, new) {
		return src, nil
	}
	if src != nil {
		src.Stop()
	}
	if new == nil {
		return nil, g.Replace(members)
	}
	return a.newSource(name, new, g), nil
}

// newSource starts a source feeding g from d, after a first lookup, or
// returns nil for a nil d. The plan checked d, so the source cannot be
// refused; were it, the group would keep its members, and the log says
// why.
func (a *app) newSource(name string, d *Discovery, g *balancer.Group) *discovery.DNS {
	if d == nil {
		return nil
	}
	cfg := d.dnsConfig()
	cfg.Logger = a.log.With("listener", name)
	src, err := discovery.NewDNS(cfg, g)
	if err != nil {
		a.log.Error("discovery: source refused", "listener", name, "name", d.Name, "err", err.Error())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), discoveryTimeout)
	defer cancel()
	if _, err := src.Resolve(ctx); err != nil {
		a.log.Warn("discovery: first lookup failed; the group waits for a good answer", "listener", name, "name", d.Name, "err", err.Error())
	}
	if err := src.Start(); err != nil {
		a.log.Error("discovery: source not started", "listener", name, "name", d.Name, "err", err.Error())
		return nil
	}
	return src
}

// sameDiscovery reports whether a and b configure the same source.
func sameDiscovery(a, b *Discovery) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.pos, y.pos = pos{}, pos{}
	return reflect.DeepEqual(x, y)
}

// namedSource is a running DNS source with the listener and group it
// feeds, as the admin server names them.
type namedSource struct {
	listener, group string
	src             *discovery.DNS
}

// publishSources lists the running DNS sources for discoveryStatus.
// Called where reloads change a.running.
func (a *app) publishSources() {
	var list []namedSource
	for name, r := range a.running {
		if r.src.main != nil {
			list = append(list, namedSource{name, "default", r.src.main})
		}
		for i, src := range r.src.rules {
			if src != nil {
				list = append(list, namedSource{name, fmt.Sprintf("rule %d", i+1), src})
			}
		}
	}
	slices.SortFunc(list, func(x, y namedSource) int {
		return cmp.Or(strings.Compare(x.listener, y.listener), strings.Compare(x.group, y.group))
	})
	a.sources.Store(&list)
}

// discoveryStatus is the admin server's view of the running DNS sources.
func (a *app) discoveryStatus() []admin.DiscoveryStatus {
	list := a.sources.Load()
	if list == nil {
		return nil
	}
	out := make([]admin.DiscoveryStatus, 0, len(*list))
	for _, ns := range *list {
		cfg, st := ns.src.Config(), ns.src.Stats()
		out = append(out, admin.DiscoveryStatus{
			Listener: ns.listener, Group: ns.group, Name: cfg.Name, Type: cfg.Type.String(),
			Members: st.Members, Lookups: st.Lookups, Updates: st.Updates, Failures: st.Failures, Empty: st.Empty,
		})
	}
	return out
}
