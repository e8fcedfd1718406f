package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/sni"
	"github.com/lbkit/lbkit/tlspolicy"
)

// The CLB profile: the product's ranges, value lists and the protocols
// each listener field belongs to, as one table that validate walks. The
// library packages take any sane value and apply the CLB defaults to zero
// fields; the CLB's bounds are the product's, so they live here, and every
// range problem of a file is found before any library call.
//
// In a file an omitted field means its default (the library's, which is
// the CLB's); a field given explicitly must be in range, so 0 never
// silently means "default" where the range excludes it.

// proto is a set of listener protocols.
type proto uint8

const (
	pTCP proto = 1 << iota
	pUDP
	pHTTP
	pHTTPS

	pL4  = pTCP | pUDP
	pWeb = pHTTP | pHTTPS
	pAll = pL4 | pWeb
)

var protoNames = []struct {
	p    proto
	name string
}{{pTCP, "tcp"}, {pUDP, "udp"}, {pHTTP, "http"}, {pHTTPS, "https"}}

// protoOf returns the protocol named s, or 0 if s names none.
func protoOf(s string) proto {
	for _, n := range protoNames {
		if n.name == s {
			return n.p
		}
	}
	return 0
}

// String names the protocols for a message: "tcp and udp", "https".
func (p proto) String() string {
	var names []string
	for _, n := range protoNames {
		if p&n.p != 0 {
			names = append(names, n.name)
		}
	}
	return orList(names, "and")
}

// orList joins items as prose: "a", "a or b", "a, b or c".
func orList(items []string, conj string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// bound is a CLB range of an integer field.
type bound struct {
	lo, hi    int
	unit      string // "seconds", "Mbps", "requests"; empty for ports, weights and counts
	unlimited bool   // -1 is accepted too, and means no limit
}

func (b bound) ok(v int) bool { return (b.unlimited && v == -1) || (v >= b.lo && v <= b.hi) }

// String renders the range as messages and the README say it:
// "1–180 (seconds)", "-1 (unlimited) or 1–5120 (Mbps)".
func (b bound) String() string {
	r := fmt.Sprintf("%d–%d", b.lo, b.hi)
	if b.unit != "" {
		r += " (" + b.unit + ")"
	}
	if b.unlimited {
		r = "-1 (unlimited) or " + r
	}
	return r
}

// Ranges shared by several fields.
var (
	portRange      = bound{lo: 1, hi: 65535}
	weightRange    = bound{lo: 0, hi: 100}
	thresholdRange = bound{lo: 2, hi: 10}
	// discoveryTTLRange bounds Discovery.MinTTL and MaxTTL (a clb
	// extension): from a lookup a second to one a day.
	discoveryTTLRange = seconds(1, 86400)
	// The instance cap has no upper bound of its own: it only limits the
	// listeners' sum.
	instanceBandwidth = bound{lo: 1, hi: math.MaxInt32, unit: "Mbps", unlimited: true}
)

func seconds(lo, hi int) bound { return bound{lo: lo, hi: hi, unit: "seconds"} }

// field is one row of the listener profile: a field, the protocols whose
// listeners take it and, for those, its range or its values. A field of
// two rows (IdleTimeout, Scheduler) has a range or value list per
// protocol; it belongs to the union of their protocols.
type field struct {
	key    string
	protos proto
	hint   string   // appended when the field is set on another protocol
	values []string // allowed values of a string field
	bound  *bound   // range of an integer field
	str    func(*Listener) string
	num    func(*Listener) int // an integer field, or a list's length
}

// set reports whether the file gives the field: present as a key, or
// non-zero (a File built in Go, as the demo's, records no keys).
func (f *field) set(l *Listener) bool {
	if _, ok := l.keys[f.key]; ok {
		return true
	}
	return (f.str != nil && f.str(l) != "") || (f.num != nil && f.num(l) != 0)
}

func intRow(key string, protos proto, b bound, get func(*Listener) int) field {
	return field{key: key, protos: protos, bound: &b, num: get}
}

func strRow(key string, protos proto, get func(*Listener) string, values ...string) field {
	return field{key: key, protos: protos, values: values, str: get}
}

var onOff = []string{on, off}

// switchRow is an on/off field.
func switchRow(key string, protos proto, get func(*Listener) string) field {
	return strRow(key, protos, get, onOff...)
}

// listenerProfile is every listener field with its protocols, ranges and
// values. Fields without a row (IDs, Description, health-check strings)
// belong to every protocol and are checked by validate or checkListener.
var listenerProfile = []field{
	intRow("ListenerPort", pAll, portRange, func(l *Listener) int { return l.ListenerPort }),
	intRow("BackendServerPort", pAll, portRange, func(l *Listener) int { return l.BackendServerPort }),
	intRow("Bandwidth", pAll, bound{lo: 1, hi: 5120, unit: "Mbps", unlimited: true}, func(l *Listener) int { return l.Bandwidth }),
	strRow("Scheduler", pTCP, func(l *Listener) string { return l.Scheduler }, "wrr", "rr", "sch", "tch", "wlc", "hash"),
	strRow("Scheduler", pUDP, func(l *Listener) string { return l.Scheduler }, "wrr", "rr", "sch", "tch", "qch", "wlc", "hash"),
	strRow("Scheduler", pWeb, func(l *Listener) string { return l.Scheduler }, "wrr", "rr", "wlc", "hash", "ewma"),
	strRow("HashBy", pWeb, func(l *Listener) string { return l.HashBy }, hashByNames...),
	strRow("HashKey", pWeb, func(l *Listener) string { return l.HashKey }),
	switchRow("AclStatus", pAll, func(l *Listener) string { return l.AclStatus }),
	strRow("AclType", pAll, func(l *Listener) string { return l.AclType }, "white", "black"),

	{key: "PersistenceTimeout", protos: pL4, hint: "; use StickySession", bound: &bound{lo: 0, hi: 3600, unit: "seconds"},
		num: func(l *Listener) int { return l.PersistenceTimeout }},
	strRow("ProxyProtocol", pTCP, func(l *Listener) string { return l.ProxyProtocol }, off, "v1", "v2"),
	strRow("ProxyProtocol", pUDP, func(l *Listener) string { return l.ProxyProtocol }, off, "v2"),
	{key: "ProxyProtocolFrom", protos: pTCP | pWeb, num: func(l *Listener) int { return len(l.ProxyProtocolFrom) }},
	switchRow("ProxyProtocolRequired", pTCP|pWeb, func(l *Listener) string { return l.ProxyProtocolRequired }),
	{key: "TrustedProxies", protos: pWeb, num: func(l *Listener) int { return len(l.TrustedProxies) }},

	intRow("EstablishedTimeout", pTCP, seconds(10, 900), func(l *Listener) int { return l.EstablishedTimeout }),
	switchRow("ConnectionDrain", pTCP, func(l *Listener) string { return l.ConnectionDrain }),
	intRow("ConnectionDrainTimeout", pTCP, seconds(10, 900), func(l *Listener) int { return l.ConnectionDrainTimeout }),

	{key: "IdleTimeout", protos: pUDP, hint: "; use EstablishedTimeout", bound: &bound{lo: 1, hi: 3600, unit: "seconds"},
		num: func(l *Listener) int { return l.IdleTimeout }},
	intRow("IdleTimeout", pWeb, seconds(1, 60), func(l *Listener) int { return l.IdleTimeout }),
	intRow("RequestTimeout", pWeb, seconds(1, 180), func(l *Listener) int { return l.RequestTimeout }),
	switchRow("Gzip", pWeb, func(l *Listener) string { return l.Gzip }),
	switchRow("XForwardedFor", pWeb, func(l *Listener) string { return l.XForwardedFor }),
	switchRow("XForwardedFor_SLBID", pWeb, func(l *Listener) string { return l.XForwardedFor_SLBID }),
	switchRow("XForwardedFor_SLBIP", pWeb, func(l *Listener) string { return l.XForwardedFor_SLBIP }),
	switchRow("XForwardedFor_proto", pWeb, func(l *Listener) string { return l.XForwardedFor_proto }),
	switchRow("XForwardedFor_SLBPORT", pWeb, func(l *Listener) string { return l.XForwardedFor_SLBPORT }),
	switchRow("XForwardedFor_ClientSrcPort", pWeb, func(l *Listener) string { return l.XForwardedFor_ClientSrcPort }),
	switchRow("StickySession", pWeb, func(l *Listener) string { return l.StickySession }),
	strRow("StickySessionType", pWeb, func(l *Listener) string { return l.StickySessionType }, "insert", "server"),
	intRow("CookieTimeout", pWeb, seconds(1, 86400), func(l *Listener) int { return l.CookieTimeout }),
	strRow("Cookie", pWeb, func(l *Listener) string { return l.Cookie }),
	{key: "Rules", protos: pWeb, num: func(l *Listener) int { return len(l.Rules) }},

	switchRow("ListenerForward", pHTTP, func(l *Listener) string { return l.ListenerForward }),
	intRow("ForwardPort", pHTTP, portRange, func(l *Listener) int { return l.ForwardPort }),

	strRow("ServerCertificateId", pHTTPS, func(l *Listener) string { return l.ServerCertificateId }),
	strRow("CACertificateId", pHTTPS, func(l *Listener) string { return l.CACertificateId }),
	strRow("TLSCipherPolicy", pHTTPS, func(l *Listener) string { return l.TLSCipherPolicy }, policyNames()...),
	switchRow("EnableHttp2", pHTTPS, func(l *Listener) string { return l.EnableHttp2 }),
	switchRow("EnableHttp3", pHTTPS, func(l *Listener) string { return l.EnableHttp3 }),
	// A hundred times the library's default: each handshake in progress
	// holds QUIC and TLS state and goroutines, and a real client's lasts
	// one round trip, so more at once is a flood, not a crowd.
	intRow("Http3MaxHandshakes", pHTTPS, bound{lo: 1, hi: 100000, unit: "handshakes"},
		func(l *Listener) int { return l.Http3MaxHandshakes }),
	intRow("Http2MaxRequestsPerConnection", pHTTPS, bound{lo: 1, hi: math.MaxInt32, unit: "requests"},
		func(l *Listener) int { return l.Http2MaxRequestsPerConnection }),
	{key: "DomainExtensions", protos: pHTTPS, num: func(l *Listener) int { return len(l.DomainExtensions) }},

	switchRow("HealthCheck", pAll, func(l *Listener) string { return l.HealthCheck }),
	strRow("HealthCheckType", pAll, func(l *Listener) string { return l.HealthCheckType }, "tcp", "http", "udp"),
	intRow("HealthCheckConnectPort", pAll, portRange, func(l *Listener) int { return l.HealthCheckConnectPort }),
	intRow("HealthCheckInterval", pAll, seconds(1, 50), func(l *Listener) int { return l.HealthCheckInterval }),
	intRow("HealthCheckConnectTimeout", pAll, seconds(1, 300), func(l *Listener) int { return l.HealthCheckConnectTimeout }),
	intRow("HealthyThreshold", pAll, thresholdRange, func(l *Listener) int { return l.HealthyThreshold }),
	intRow("UnhealthyThreshold", pAll, thresholdRange, func(l *Listener) int { return l.UnhealthyThreshold }),
}

// belongs and hints gather the rows of each field: the protocols it
// belongs to, and the hint for the others.
var belongs, hints = func() (map[string]proto, map[string]string) {
	b, h := map[string]proto{}, map[string]string{}
	for _, f := range listenerProfile {
		b[f.key] |= f.protos
		if f.hint != "" {
			h[f.key] = f.hint
		}
	}
	return b, h
}()

func policyNames() []string {
	var names []string
	for _, p := range tlspolicy.Policies() {
		names = append(names, p.Name)
	}
	return names
}

// reservedUDPPorts are the ports the CLB refuses for UDP listeners.
var reservedUDPPorts = []int{250, 4789, 4790}

// inRange reports v at key unless b holds it: the one template of every
// range error, echoing the value as given in the file.
func (c checker) inRange(key string, v int, b bound) {
	if !b.ok(v) {
		c.bad(key, "%d out of range %s", v, b)
	}
}

// checkProfile checks one listener against the profile: the protocols of
// its fields, their ranges and values, and the rules that span fields.
// hcOn says whether the listener runs health checks.
func checkProfile(c checker, l *Listener, hcOn bool) {
	p := protoOf(l.ListenerProtocol)
	done := map[string]bool{}
	for i := range listenerProfile {
		f := &listenerProfile[i]
		if !f.set(l) || done[f.key] {
			continue
		}
		switch {
		case p == 0:
			// Unknown protocol (reported by validate): check the value
			// against the field's first row only.
		case belongs[f.key]&p == 0:
			done[f.key] = true
			c.bad(f.key, "only for %s listeners%s", belongs[f.key], hints[f.key])
			continue
		case f.protos&p == 0:
			continue // another protocol's row
		}
		done[f.key] = true
		switch {
		case f.bound != nil:
			c.inRange(f.key, f.num(l), *f.bound)
		case f.values != nil:
			if v := f.str(l); !contains(f.values, v) {
				where := ""
				if belongs[f.key] != f.protos {
					where = " on " + p.String() + " listeners"
				}
				c.notIn(f.key, v, f.values, where)
			}
		}
	}
	if _, given := l.keys["ListenerPort"]; !given && l.ListenerPort == 0 {
		c.bad("ListenerPort", "required")
	}
	if p == pUDP && slices.Contains(reservedUDPPorts, l.ListenerPort) {
		c.bad("ListenerPort", "%d reserved for udp (250, 4789, 4790)", l.ListenerPort)
	}
	if l.Cookie != "" && !cookieName(l.Cookie) {
		c.bad("Cookie", "%q: want 1–200 ASCII letters and digits", l.Cookie)
	}
	if switchOn(l.StickySession, false) && l.StickySessionType == "server" && l.Cookie == "" {
		c.bad("Cookie", "required with StickySessionType server")
	}
	if p&pWeb != 0 {
		checkHash(c, l)
	}
	if p == pHTTPS && l.ServerCertificateId == "" {
		c.bad("ServerCertificateId", "required for https listeners")
	}
	for j, r := range l.Rules {
		rc := checker{ps: c.ps, path: fmt.Sprintf("%s.Rules[%d]", c.path, j), p: r.pos}
		if r.Domain != "" {
			rc.lib("Domain", sniDomain(r.Domain))
		}
		if r.Url != "" && r.Url[0] != '/' {
			rc.bad("Url", "%q: want a path starting with /", r.Url)
		}
	}
	for j, d := range l.DomainExtensions {
		dc := checker{ps: c.ps, path: fmt.Sprintf("%s.DomainExtensions[%d]", c.path, j), p: d.pos}
		if d.Domain != "" {
			dc.lib("Domain", sniDomain(d.Domain))
		}
	}
	if l.HealthCheckMethod != "" {
		_, err := health.ParseMethod(l.HealthCheckMethod)
		c.lib("HealthCheckMethod", err)
	}
	if l.HealthCheckURI != "" {
		_, err := health.ParseURI(l.HealthCheckURI)
		c.lib("HealthCheckURI", err)
	}
	if l.HealthCheckHttpCode != "" {
		_, err := health.ParseStatusClasses(l.HealthCheckHttpCode)
		c.lib("HealthCheckHttpCode", err)
	}
	if hcOn && healthKind(l) == "udp" {
		for _, k := range []struct{ key, val string }{{"HealthCheckReq", l.HealthCheckReq}, {"HealthCheckExp", l.HealthCheckExp}} {
			if k.val == "" {
				c.bad(k.key, `required for udp health checks (or HealthCheck: "off")`)
			}
		}
	}
}

// hashByNames are the values of HashBy, as HAProxy names its balance
// algorithms (hdr, uri, url_param).
var hashByNames = []string{"header", "cookie", "uri", "url_param"}

// checkHash checks that HashBy comes with the hash scheduler and HashKey
// with the sources that name something. The names themselves are the
// library's to check.
func checkHash(c checker, l *Listener) {
	if l.HashBy != "" && l.Scheduler != balancer.NameHash {
		c.bad("HashBy", "only with Scheduler hash")
	}
	switch {
	case l.HashBy == "" && l.HashKey != "":
		c.bad("HashKey", "only with HashBy")
	case l.HashBy == "uri" && l.HashKey != "":
		c.bad("HashKey", "not with HashBy uri (the path is hashed)")
	case l.HashBy != "" && l.HashBy != "uri" && l.HashKey == "" && contains(hashByNames, l.HashBy):
		c.bad("HashKey", "required with HashBy %s", l.HashBy)
	}
}

// healthKind is the listener's health-check type: HealthCheckType, or
// the one its protocol implies.
func healthKind(l *Listener) string {
	if l.HealthCheckType != "" {
		return l.HealthCheckType
	}
	return map[string]string{"tcp": "tcp", "udp": "udp", "http": "http", "https": "http"}[l.ListenerProtocol]
}

func sniDomain(s string) error {
	_, err := sni.ParseDomain(s)
	return err
}

// cookieName reports whether s is a CLB cookie name: 1–200 ASCII letters
// and digits (so it cannot start with '$').
func cookieName(s string) bool {
	if len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// lib reports a library error, if any, at key with the library's package
// and field prefix stripped: "value: reason" once.
func (c checker) lib(key string, err error) {
	if err != nil {
		c.bad(key, "%s", libMessage(err))
	}
}

// libMessage is err as clb prints it at a field: a ConfigError without
// its package and field ("\"a..b\": empty label"), anything else with the
// package prefix trimmed.
func libMessage(err error) string {
	var ce *listener.ConfigError
	if errors.As(err, &ce) {
		return ce.Value + ": " + ce.Reason
	}
	msg := err.Error()
	for _, pkg := range []string{"listener: ", "balancer: ", "health: ", "session: ", "acl: ", "sni: ", "tlspolicy: ", "discovery: "} {
		msg = strings.TrimPrefix(msg, pkg)
	}
	return msg
}
