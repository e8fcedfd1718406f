package main

import (
	"crypto/tls"
	"slices"

	"github.com/lbkit/lbkit/tlspolicy"
)

// An https listener with EnableHttp3 on also serves HTTP/3 over QUIC on
// its port number, UDP (an extension of the CLB's fields; off by
// default, as in the CLB profile, and on in the demo). HTTP/1.1 and
// HTTP/2 responses advertise it in Alt-Svc.

// http3On reports whether l serves HTTP/3.
func http3On(l *Listener) bool {
	return l.ListenerProtocol == "https" && switchOn(l.EnableHttp3, false)
}

// checkHTTP3 reports what keeps l's EnableHttp3 from working: HTTP/3
// needs TLS 1.3, which only some policies allow, and the UDP port.
func checkHTTP3(c checker, l *Listener) {
	if !http3On(l) {
		return
	}
	name := l.TLSCipherPolicy
	pol := tlspolicy.Default()
	if name != "" {
		p, err := tlspolicy.Lookup(name)
		if err != nil {
			return // TLSCipherPolicy's own problem, reported there
		}
		pol = p
	} else {
		name = pol.Name + " (the default)"
	}
	if !slices.Contains(pol.Versions, tls.VersionTLS13) {
		c.bad("EnableHttp3", "HTTP/3 needs TLS 1.3, and TLSCipherPolicy %s has none: use one with TLS 1.3, such as tls_cipher_policy_1_2_strict_with_1_3", name)
	}
	if slices.Contains(reservedUDPPorts, l.ListenerPort) {
		c.bad("EnableHttp3", "HTTP/3 is served on udp port %d, which is reserved for udp (250, 4789, 4790)", l.ListenerPort)
	}
}

// http3Note explains a udp port clash with the HTTP/3 of the https
// listener o.
func http3Note(o *Listener, udp bool) string {
	if udp && o.ListenerProtocol == "https" {
		return " for HTTP/3 (EnableHttp3)"
	}
	return ""
}
