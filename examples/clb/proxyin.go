package main

import (
	"net/netip"
	"strings"

	"github.com/lbkit/lbkit/listener"
)

// A fleet behind another balancer (clb extensions beyond the CLB):
//
//	ProxyProtocolFrom: [10.0.0.0/24, 10.0.1.7]  # tcp, http, https
//	ProxyProtocolRequired: "off"                 # default on
//	TrustedProxies: [10.0.0.0/24]                # http, https
//
// ProxyProtocolFrom are the balancers in front (a prefix, or one
// address): connections from them start with a PROXY protocol header,
// v1 or v2, naming the real client, which the listener's ACL, scheduler,
// headers and access log then see (listener.AcceptProxy). A source not
// listed is not read for one. ProxyProtocolRequired off takes a listed
// source that sends no header as the client itself. TrustedProxies are
// the proxies whose X-Forwarded-For names the client
// (httpproxy.Options.TrustedProxies). Their protocols are profile rows.

// checkProxyIn reports the listener's prefixes that do not parse.
func checkProxyIn(c checker, l *Listener) {
	for _, f := range []struct {
		key  string
		list []string
	}{{"ProxyProtocolFrom", l.ProxyProtocolFrom}, {"TrustedProxies", l.TrustedProxies}} {
		for _, s := range f.list {
			if _, ok := parsePrefix(s); !ok {
				c.bad(f.key, "%q: not an IP prefix (10.0.0.0/8) or address", s)
			}
		}
	}
	if l.ProxyProtocolRequired != "" && len(l.ProxyProtocolFrom) == 0 {
		c.bad("ProxyProtocolRequired", "needs ProxyProtocolFrom, the balancers in front")
	}
}

// acceptProxy is the listener's AcceptProxy; the file was validated.
func acceptProxy(l Listener) listener.AcceptProxy {
	if len(l.ProxyProtocolFrom) == 0 {
		return listener.AcceptProxy{}
	}
	return listener.AcceptProxy{From: prefixes(l.ProxyProtocolFrom), Required: switchOn(l.ProxyProtocolRequired, true)}
}

// prefixes parses a validated list of prefixes and addresses.
func prefixes(list []string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range list {
		if p, ok := parsePrefix(s); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// parsePrefix reads "10.0.0.0/8", or one address as its own prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p, err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}
