package main

import "github.com/lbkit/lbkit/listener"

// An https listener with EnableHttp3 bounds the QUIC handshakes it has
// in progress with Http3MaxHandshakes (an extension of the CLB's
// fields): beyond it a new handshake is refused, and from half of it on
// a client must first prove its address with a Retry, so a flood from
// spoofed sources holds no state. Omitted, the library's default
// (httpproxy.DefaultMaxQUICHandshakes, 1000); its range is in the
// profile. The library cannot change it on a running listener, so a
// reload that changes it replaces the listener, gracefully.

// checkHTTP3Limits reports Http3MaxHandshakes on an https listener
// without HTTP/3, where it would bound nothing. Other protocols are
// told by the profile that the field is not theirs.
func checkHTTP3Limits(c checker, l *Listener) {
	if l.ListenerProtocol == "https" && c.p.given("Http3MaxHandshakes") && !http3On(l) {
		c.bad("Http3MaxHandshakes", "%d: needs EnableHttp3 on", l.Http3MaxHandshakes)
	}
}

// http3Limits sets h's HTTP/3 limits from l; h.HTTP3 is already set.
func http3Limits(h *listener.HTTPOptions, l *Listener) {
	if h.HTTP3 {
		h.MaxQUICHandshakes = l.Http3MaxHandshakes
	}
}
