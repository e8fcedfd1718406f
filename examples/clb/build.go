package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/session"
	"github.com/lbkit/lbkit/sni"
	"github.com/lbkit/lbkit/tlspolicy"
)

// env is what every plan of one process shares: the generated demo
// certificates, the session-cookie key (so cookies survive a reload that
// replaces a listener) and the loggers.
type env struct {
	demoCert, demoShopCert *tls.Certificate
	// stickyKey and tickets are the process's SERVERID cookie key and
	// TLS session-ticket keys, used where the configuration's Fleet
	// gives none: made at the start, handed to the successor by a
	// binary upgrade (so cookies and sessions survive it).
	stickyKey []byte
	tickets   *ticketKeyring
	h3lb      *http3QuicLb // -quic-lb-server-id's; nil without
	qh        *quicHandoff // HTTP/3 across upgrades; nil: quic-go reads the sockets
	upg       *upgrader    // nil: sockets are bound, never inherited
	log       *slog.Logger
	accessLog *slog.Logger
}

// plan is a configuration turned into listener.Configs, validated by the
// library, ready to be added to an instance.
type plan struct {
	file      *File
	inst      listener.InstanceConfig
	listeners []*lspec
	acls      map[string]*acl.Group
	version   string // of the configuration, File.version
}

// lspec is one planned listener.
type lspec struct {
	src   Listener
	idx   int
	name  string
	cfg   listener.Config
	main  []balancer.Backend   // members of cfg.Group
	rules [][]balancer.Backend // members of each rule's group
	sched string
	// disc and ruleDisc are the Discovery of the main group and of each
	// rule's group that DNS feeds, nil for configured members.
	disc     *Discovery
	ruleDisc []*Discovery
}

// listenerFields maps library field names (as ConfigError reports them,
// package-prefixed) to the configuration keys that set them.
var listenerFields = map[string]string{
	"listener.Port": "ListenerPort", "listener.Bandwidth": "Bandwidth",
	"listener.PersistenceTimeout": "PersistenceTimeout", "listener.EstablishedTimeout": "EstablishedTimeout",
	"listener.IdleTimeout": "IdleTimeout", "listener.ConnectionDrainTimeout": "ConnectionDrainTimeout",
	"listener.ProxyProtocol": "ProxyProtocol", "listener.ACL": "AclId", "listener.Group": "Scheduler",
	"listener.Scheduler":        "Scheduler",
	"listener.HTTP.IdleTimeout": "IdleTimeout", "listener.HTTP.RequestTimeout": "RequestTimeout",
	"listener.HTTP.RedirectToPort": "ForwardPort", "listener.HTTP.Rules": "Rules",
	"listener.HTTP.Domains": "DomainExtensions", "listener.HTTP.Certificate": "ServerCertificateId",
	"listener.HTTP.HTTP2MaxRequestsPerConnection": "Http2MaxRequestsPerConnection",
	"listener.HTTP.MaxQUICHandshakes":             "Http3MaxHandshakes",
	"listener.HTTP.HashBy":                        "HashBy", "listener.HTTP.HashBy.Header": "HashKey",
	"listener.HTTP.HashBy.Cookie": "HashKey", "listener.HTTP.HashBy.Query": "HashKey",
	"session.CookieTimeout": "CookieTimeout", "session.CookieName": "Cookie",
	"health.Port": "HealthCheckConnectPort", "health.Interval": "HealthCheckInterval",
	"health.Timeout": "HealthCheckConnectTimeout", "health.HealthyThreshold": "HealthyThreshold",
	"health.UnhealthyThreshold": "UnhealthyThreshold", "health.Domain": "HealthCheckDomain",
	"health.URI": "HealthCheckURI", "health.Method": "HealthCheckMethod",
	"health.Request": "HealthCheckReq", "health.Response": "HealthCheckExp", "health.Codes": "HealthCheckHttpCode",
}

// libProblem reports a library error against the key that caused it,
// without the library's prefix.
func libProblem(c checker, fallback string, err error) {
	var ce *listener.ConfigError
	key := fallback
	if errors.As(err, &ce) {
		if k, ok := listenerFields[ce.Pkg+"."+ce.Field]; ok {
			key = k
		} else if m := ruleField.FindStringSubmatch(ce.Field); m != nil {
			key = "Rules[" + m[1] + "]." + map[string]string{"Host": "Domain", "Path": "Url", "Group": "VServerGroupId"}[m[2]]
		}
	}
	c.lib(key, err)
}

// ruleField matches the library's name of a forwarding rule's field.
var ruleField = regexp.MustCompile(`^HTTP\.Rules\[(\d+)\]\.(Host|Path|Group)$`)

func sec(n int) time.Duration { return time.Duration(n) * time.Second }

// mbps reads a CLB bandwidth: -1 (unlimited) is the library's 0.
func mbps(n int) int { return max(n, 0) }

// weight reads a CLB weight: absent is the default, and 0 means drain,
// which the library expresses as a State (its weights start at 1).
func weight(w *int) (int, balancer.State) {
	switch {
	case w == nil:
		return balancer.DefaultWeight, balancer.Ready
	case *w == 0:
		return balancer.DefaultWeight, balancer.Drain
	}
	return *w, balancer.Ready
}

// makePlan turns a checked File into listener configurations, loading
// certificates and building groups, ACLs and policies. Every problem the
// library finds is reported against the line that caused it; the plan
// holds the listeners that had none.
func makePlan(f *File, e *env) (*plan, *problems) {
	ps := &problems{file: f.name}
	p := &plan{file: f, acls: map[string]*acl.Group{}}
	p.inst = listener.InstanceConfig{ID: f.LoadBalancerId, Bandwidth: mbps(f.Bandwidth), Logger: e.log}
	if p.inst.ID == "" {
		p.inst.ID = "lb-clb"
	}
	p.inst.Address = netip.MustParseAddr("127.0.0.1")
	if f.Address != "" {
		p.inst.Address = netip.MustParseAddr(f.Address)
	}
	host := f.listenHost()
	family := acl.IPv4
	if netip.MustParseAddr(host).Is6() {
		family = acl.IPv6
	}

	h3ids := e.h3lb.generator(f, ps)
	certs := map[string]*tls.Certificate{demoCertID: e.demoCert, demoShopCertID: e.demoShopCert}
	for i, sc := range f.ServerCertificates {
		c := checker{ps: ps, path: fmt.Sprintf("ServerCertificates[%d]", i), p: sc.pos}
		certPEM, err1 := f.read(sc.CertificateFile)
		keyPEM, err2 := f.read(sc.PrivateKeyFile)
		switch {
		case err1 != nil:
			c.bad("CertificateFile", "%s", pemMessage(sc.CertificateFile, err1))
		case err2 != nil:
			c.bad("PrivateKeyFile", "%s", pemMessage(sc.PrivateKeyFile, err2))
		default:
			cert, err := tlspolicy.LoadCertificate(certPEM, keyPEM, nil)
			if err != nil {
				var ce *tlspolicy.ConfigError
				if errors.As(err, &ce) && ce.Field == "Key" {
					c.bad("PrivateKeyFile", "%s", pemMessage(sc.PrivateKeyFile, err))
				} else {
					c.bad("CertificateFile", "%s", pemMessage(sc.CertificateFile, err))
				}
				continue
			}
			certs[sc.ServerCertificateId] = &cert
		}
	}
	cas := map[string]*x509.CertPool{}
	for i, ca := range f.CACertificates {
		c := checker{ps: ps, path: fmt.Sprintf("CACertificates[%d]", i), p: ca.pos}
		data, err := f.read(ca.CACertificateFile)
		if err == nil {
			var pool *x509.CertPool
			if pool, err = tlspolicy.LoadCAPool(data); err == nil {
				cas[ca.CACertificateId] = pool
				continue
			}
		}
		c.bad("CACertificateFile", "%s", pemMessage(ca.CACertificateFile, err))
	}
	for i, a := range f.AccessControlLists {
		c := checker{ps: ps, path: fmt.Sprintf("AccessControlLists[%d]", i), p: a.pos}
		fam := acl.IPv4
		if a.AddressIPVersion == "ipv6" {
			fam = acl.IPv6
		}
		var entries []acl.Entry
		for j, ae := range a.AclEntrys {
			ec := checker{ps: ps, path: fmt.Sprintf("%s.AclEntrys[%d]", c.path, j), p: ae.pos}
			en, err := acl.ParseEntry(ae.AclEntryIP)
			if err != nil {
				ec.lib("AclEntryIP", err)
				continue
			}
			en.Comment = ae.AclEntryComment
			entries = append(entries, en)
		}
		name := a.AclName
		if name == "" {
			name = a.AclId
		}
		g, err := acl.NewGroup(acl.GroupConfig{Name: name, Family: fam}, entries...)
		if err != nil {
			c.lib("AclEntrys", err)
			continue
		}
		p.acls[a.AclId] = g
	}
	vgroups := map[string][]balancer.Backend{}
	for _, g := range f.VServerGroups {
		vgroups[g.VServerGroupId] = backends(g.BackendServers, 0)
	}
	msgroups := map[string][]balancer.Backend{}
	for _, g := range f.MasterSlaveServerGroups {
		msgroups[g.MasterSlaveServerGroupId] = backends(g.MasterSlaveBackendServers, 0)
	}
	discs := groupDiscovery(f)
	// Listeners whose certificate, CA or ACL failed above are still
	// planned, so their other problems are reported too; a listener with
	// any problem is left out of the plan.
	for i, l := range f.Listeners {
		before := len(ps.list)
		// A certificate, CA or ACL that failed to load is reported once, at
		// its own section; its listeners are left out of the plan.
		broken := (l.ServerCertificateId != "" && certs[l.ServerCertificateId] == nil) ||
			(l.CACertificateId != "" && cas[l.CACertificateId] == nil) ||
			(switchOn(l.AclStatus, false) && p.acls[l.AclId] == nil)
		c := checker{ps: ps, path: fmt.Sprintf("Listeners[%d]", i), p: l.pos}
		s := &lspec{src: l, idx: i, sched: l.Scheduler}
		if s.sched == "" {
			s.sched = balancer.NameWRR
		}
		proto := listener.Protocol(l.ListenerProtocol)
		s.name = l.ListenerProtocol + "_" + strconv.Itoa(l.ListenerPort)
		switch {
		case l.VServerGroupId != "":
			s.main = vgroups[l.VServerGroupId]
		case l.MasterSlaveServerGroupId != "":
			s.main = msgroups[l.MasterSlaveServerGroupId]
		case l.BackendServerPort != 0:
			s.main = backends(f.BackendServers, l.BackendServerPort)
		}
		planDiscovery(s, discs)
		cfg := listener.Config{
			Protocol: proto, Port: l.ListenerPort, Host: host, Stopped: true,
			PersistenceTimeout:     sec(l.PersistenceTimeout),
			EstablishedTimeout:     sec(l.EstablishedTimeout),
			ConnectionDrain:        switchOn(l.ConnectionDrain, false),
			ConnectionDrainTimeout: sec(l.ConnectionDrainTimeout),
			Bandwidth:              mbps(l.Bandwidth),
		}
		switch l.ProxyProtocol {
		case "v1":
			cfg.ProxyProtocol = 1
		case "v2":
			cfg.ProxyProtocol = 2
		}
		if proto == listener.UDP {
			cfg.IdleTimeout = sec(l.IdleTimeout)
		} else {
			cfg.AcceptProxy = acceptProxy(l)
		}
		redirect := switchOn(l.ListenerForward, false)
		hcOn := switchOn(l.HealthCheck, true) && !redirect
		g, err := newGroup(s.sched, s.main)
		if err != nil {
			libProblem(c, "Scheduler", err)
		}
		cfg.Group = g
		if g := p.acls[l.AclId]; g != nil && switchOn(l.AclStatus, false) {
			mode := acl.Whitelist
			if l.AclType == "black" {
				mode = acl.Blacklist
			}
			pol, err := acl.NewPolicy(acl.PolicyConfig{Group: g, Mode: mode, Family: family})
			if err != nil {
				c.lib("AclId", err)
			}
			cfg.ACL = pol
		}
		if proto == listener.HTTP || proto == listener.HTTPS {
			h := &cfg.HTTP
			h.IdleTimeout = sec(l.IdleTimeout)
			h.RequestTimeout = sec(l.RequestTimeout)
			h.HTTP2MaxRequestsPerConnection = l.Http2MaxRequestsPerConnection
			h.NoGzip = !switchOn(l.Gzip, true)
			h.NoXForwardedFor = !switchOn(l.XForwardedFor, true)
			h.SLBID = switchOn(l.XForwardedFor_SLBID, false)
			h.SLBIP = switchOn(l.XForwardedFor_SLBIP, false)
			h.XForwardedProto = switchOn(l.XForwardedFor_proto, false)
			h.XForwardedPort = switchOn(l.XForwardedFor_SLBPORT, false)
			h.XForwardedClientSrcPort = switchOn(l.XForwardedFor_ClientSrcPort, false)
			h.TrustedProxies = prefixes(l.TrustedProxies)
			h.AccessLog = e.accessLog
			h.HashBy = hashPolicy(l.HashBy, l.HashKey)
			if redirect {
				h.RedirectToPort = l.ForwardPort
			}
			if switchOn(l.StickySession, false) {
				key, prev := f.cookieKeys(e)
				sc := &session.Config{Key: key, PreviousKey: prev, CookieTimeout: sec(l.CookieTimeout), CookieName: l.Cookie}
				if l.StickySessionType == "server" {
					sc.Mode = session.Rewrite
				}
				// The cookie settings alone: the listener gives the
				// Sticky its groups.
				check := *sc
				check.Backends = []string{}
				if _, err := session.New(check); err != nil {
					libProblem(c, "StickySessionType", err)
				}
				h.StickySession = sc
			}
			for j, r := range l.Rules {
				members := vgroups[r.VServerGroupId]
				rg, err := newGroup(s.sched, members)
				if err != nil {
					checker{ps: ps, path: fmt.Sprintf("%s.Rules[%d]", c.path, j), p: r.pos}.lib("VServerGroupId", err)
					continue
				}
				s.rules = append(s.rules, members)
				h.Rules = append(h.Rules, listener.Rule{Host: r.Domain, Path: r.Url, Group: rg})
			}
			if proto == listener.HTTPS {
				h.Certificate = certs[l.ServerCertificateId]
				h.NoHTTP2 = !switchOn(l.EnableHttp2, true)
				h.HTTP3 = http3On(&l)
				http3Limits(h, &l)
				if h.HTTP3 && h3ids != nil {
					h.QUICConnIDs = h3ids
				}
				e.qh.wire(h)
				if l.TLSCipherPolicy != "" {
					pol, err := tlspolicy.Lookup(l.TLSCipherPolicy)
					c.lib("TLSCipherPolicy", err)
					h.TLSPolicy = pol
				}
				if l.CACertificateId != "" {
					h.ClientCAs = cas[l.CACertificateId]
				}
				sel, err := sni.NewSelector(sni.SelectorConfig{Default: h.Certificate})
				for j, d := range l.DomainExtensions {
					dc := checker{ps: ps, path: fmt.Sprintf("%s.DomainExtensions[%d]", c.path, j), p: d.pos}
					if certs[d.ServerCertificateId] == nil || err != nil {
						continue // its certificate's problem is reported
					}
					if err := sel.Set(d.Domain, certs[d.ServerCertificateId]); err != nil {
						dc.lib("Domain", err)
						continue
					}
					if h.Domains == nil {
						h.Domains = map[string]*tls.Certificate{}
					}
					h.Domains[d.Domain] = certs[d.ServerCertificateId]
				}
			}
		}
		if hcOn {
			hc, err := healthConfig(l)
			if err != nil {
				libProblem(c, "HealthCheckType", err)
			} else {
				cfg.HealthCheck = hc
			}
		}
		f.applyFleet(&cfg, l, e)
		s.cfg = cfg
		if len(ps.list) == before && !broken {
			p.listeners = append(p.listeners, s)
		}
	}
	return p, ps
}

// pemMessage says what is wrong with the PEM file at path: its name as
// given, what it holds, why that is refused.
func pemMessage(path string, err error) string {
	var ce *tlspolicy.ConfigError
	if errors.As(err, &ce) {
		what, uerr := strconv.Unquote(ce.Value)
		if uerr != nil {
			what = ce.Value
		}
		return fmt.Sprintf("%q: %s: %s", path, what, ce.Reason)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%q: %v", path, pe.Err)
	}
	return fmt.Sprintf("%q: %s", path, libMessage(err))
}

// path resolves a PEM path relative to the configuration file.
func (f *File) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.dir, p)
}

// read returns the PEM file p names: a key in etcd when the
// configuration came from there, else a file.
func (f *File) read(p string) ([]byte, error) {
	if f.keys != nil {
		return f.keys.read(p) // the snapshot's digest holds every key
	}
	data, err := os.ReadFile(f.path(p))
	if err == nil && f.digest != nil {
		f.digest.add(data)
	}
	return data, err
}

func backends(servers []Server, port int) []balancer.Backend {
	bs := make([]balancer.Backend, 0, len(servers))
	for _, s := range servers {
		pt := s.Port
		if port != 0 {
			pt = port
		}
		w, state := weight(s.Weight)
		bs = append(bs, balancer.Backend{
			ID:      s.ServerId,
			Addr:    netip.AddrPortFrom(netip.MustParseAddr(s.ServerIp), uint16(pt)).String(),
			Weight:  w,
			State:   state,
			Standby: s.ServerType == "slave",
		})
	}
	return bs
}

// hashPolicy is the library's form of HashBy and HashKey.
func hashPolicy(by, key string) listener.HashPolicy {
	switch by {
	case "header":
		return listener.HashPolicy{Header: key}
	case "cookie":
		return listener.HashPolicy{Cookie: key}
	case "uri":
		return listener.HashPolicy{Path: true}
	case "url_param":
		return listener.HashPolicy{Query: key}
	}
	return listener.HashPolicy{}
}

// newGroup builds a listener's own server group. With a health check the
// listener's checker follows it, so each member takes traffic from its
// first passed probe; without one, members are healthy.
func newGroup(sched string, members []balancer.Backend) (*balancer.Group, error) {
	s, err := balancer.ParseScheduler(sched)
	if err != nil {
		return nil, err
	}
	return balancer.New(balancer.Config{Scheduler: s}, members...)
}

// healthConfig builds a listener's health check and validates it.
func healthConfig(l Listener) (*health.Config, error) {
	k, err := health.ParseKind(healthKind(&l))
	if err != nil {
		return nil, err
	}
	hc := &health.Config{
		Kind:               k,
		Port:               l.HealthCheckConnectPort,
		Interval:           sec(l.HealthCheckInterval),
		Timeout:            sec(l.HealthCheckConnectTimeout),
		HealthyThreshold:   l.HealthyThreshold,
		UnhealthyThreshold: l.UnhealthyThreshold,
		Method:             l.HealthCheckMethod,
		Domain:             l.HealthCheckDomain,
		URI:                l.HealthCheckURI,
		Request:            l.HealthCheckReq,
		Response:           l.HealthCheckExp,
	}
	if l.HealthCheckHttpCode != "" {
		if hc.Codes, err = health.ParseStatusClasses(l.HealthCheckHttpCode); err != nil {
			return nil, err
		}
	}
	c, err := health.New(*hc)
	if err != nil {
		return nil, err
	}
	c.Stop()
	// The effective values (a UDP timeout is raised to the interval), from
	// which the start-up wait is bounded.
	hc.Interval, hc.Timeout = c.Config().Interval, c.Config().Timeout
	return hc, nil
}

// check validates a plan the way Instance.Add will, on a scratch instance
// whose listeners are never started: bandwidth sums, port clashes and
// what else only the library knows. It adds to ps.
func (p *plan) check(ps *problems) {
	scratchCfg := p.inst
	scratchCfg.Logger = slog.New(slog.DiscardHandler)
	scratch, err := listener.NewInstance(scratchCfg)
	if err != nil {
		checker{ps: ps, p: p.file.pos}.lib("LoadBalancerId", err)
		return
	}
	defer scratch.Stop(context.Background())
	for _, s := range p.listeners {
		cfg := s.cfg
		cfg.Stopped = true
		if _, err := scratch.Add(cfg); err != nil {
			libProblem(checker{ps: ps, path: fmt.Sprintf("Listeners[%d]", s.idx), p: s.src.pos}, "ListenerProtocol", err)
		}
	}
}

// load reads, plans and checks a configuration file.
func load(path string, e *env) (*plan, error) {
	f, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	return planFile(f, e)
}

// planFile plans and checks f, reporting the problems of both at once.
func planFile(f *File, e *env) (*plan, error) {
	p, ps := makePlan(f, e)
	p.check(ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	p.version = f.version() // after makePlan read the PEM files
	return p, nil
}

// hardKey is the part of a listener's configuration that cannot change
// while it runs: a reload replaces the listener when it differs.
func hardKey(l Listener) Listener {
	l.pos = pos{}
	l.Description = ""
	l.Scheduler = ""
	l.AclStatus, l.AclType, l.AclId = "", "", ""
	l.Bandwidth = 0
	l.TLSCipherPolicy, l.ServerCertificateId, l.CACertificateId = "", "", ""
	l.DomainExtensions = nil
	l.VServerGroupId, l.MasterSlaveServerGroupId, l.BackendServerPort = "", "", 0
	rules := make([]Rule, len(l.Rules))
	for i, r := range l.Rules {
		rules[i] = Rule{Domain: r.Domain, Url: r.Url}
	}
	l.Rules = rules
	return l
}

func sameHard(a, b Listener) bool { return reflect.DeepEqual(hardKey(a), hardKey(b)) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
