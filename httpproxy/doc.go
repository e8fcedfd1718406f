// Package httpproxy is lbkit's HTTP reverse proxy: HTTP/1.1, HTTP/2 and
// HTTP/3 clients, HTTP/1.1 backends chosen from a balancer.Group.
//
// # Two tiers
//
// The handler tier is one line: New(group, Options) returns a *Proxy,
// an http.Handler to mount in any net/http server (or behind any
// router or middleware):
//
//	p, err := httpproxy.New(group, httpproxy.Options{})
//	http.ListenAndServe(":8080", p)
//
// The listener tier is what package listener runs for its HTTP and HTTPS
// listeners: Proxy.NewServer owns the client connections — accept, the
// TLS handshake, HTTP/2 through net/http's server, the fast lane for
// HTTP/1.1 — and adds what only the owner of a connection can do: the
// ACL at accept (Host.Allow), keep-alive request limits, idle and header
// timeouts, the URI length limit, the HTTPS redirect, a middleware, and
// the request guard that refuses ambiguous framing (Content-Length with
// Transfer-Encoding, duplicate lengths, obs-fold) before net/http reads
// it. Every Options field works in both tiers; ServerConfig's work only
// in the listener tier. An embedder runs it with a nil Host, which lets
// every client in (see the AcceptProxy example, behind a balancer that
// sends PROXY headers). Server.Shutdown stops it; Server.Retire stops
// it for when another server takes over its socket, closing each
// keep-alive connection only after a response that says so.
//
// # One request pipeline
//
// Every request, in either tier and either lane, takes the same steps:
// routing (Options.Rules: the best host pattern, then the longest path
// prefix), the sticky-session cookie, the hash key (Options.HashBy), the
// header plan, the shared attempt loop (a pick, then up to two more
// backends for a request that may be replayed, passive health, the
// pick's Done with the time to the response head), and the error
// mapping. The header plan is computed once from the Options: it removes
// the hop-by-hop fields (and those a Connection field names), the fields
// the proxy sets, and forged client-certificate fields; appends the
// client to X-Forwarded-For (or cuts it after the client a trusted proxy
// names, below); and sets SLB-ID, SLB-IP, X-Forwarded-Proto,
// X-Forwarded-Port and X-Forwarded-Client-srcport as asked. The general
// lane writes the plan into an http.Header, the fast lane while it
// copies a request head byte for byte.
//
// # Trusted proxies
//
// X-Forwarded-For is believed only from Options.TrustedProxies. From a
// peer in them the request's client is the right-most entry that is not
// itself a trusted proxy (nginx's set_real_ip_from with
// real_ip_recursive on); an entry that is not an address ends the walk,
// its right-hand neighbour being the client; all trusted, the leftmost
// is. That client is what the request's ACL check (Host.Allow), hash
// key, access log and X-Forwarded-For see: the field goes to the
// backend cut after the client, the trusted hops dropped, so its last
// entry names the client, as it does for a request straight from one.
// From any other peer the field is appended to and not believed.
// X-Forwarded-Client-srcport stays the peer's port, as X-Forwarded-For
// carries none. The peer is the connection's client: behind a listener
// that reads PROXY headers (ServerConfig.AcceptProxy), the one the
// header names; the walk costs the fast lane no allocation.
//
// # Lanes
//
// The fast lane serves HTTP/1.1 GET and HEAD without net/http: each
// connection's goroutine parses the request head in place, writes it to
// a pooled backend connection, parses the response head the same way
// and sends head and body back, allocating nothing for the common
// shapes. Anything else — bodies, other methods, upgrades, HTTP/1.0,
// unusual or malformed heads — is handed, before a byte of it is
// consumed, with its connection to net/http's server, which serves it
// from then on. The lane is off when a hook (Rewrite, Transport,
// ModifyResponse, ErrorHandler), a middleware, a redirect or client
// certificate headers are set: they need http.Request and
// http.Response. HTTP/2 requests take the general lane after net/http's
// HTTP/2 server decodes them.
//
// # HTTP/3
//
// With ServerConfig.QUIC (a UDP socket, beside TLS) the listener tier
// also serves HTTP/3 ([RFC 9114]) on one quic.Transport of that socket,
// each QUIC connection by a quic-go http3 server of its own, so that it
// can be sent a GOAWAY alone. HTTP/3 requests take the same handler
// as HTTP/2 ones — ACL, limits, rules, stickiness, hashing, the header
// plan (X-Forwarded-Proto: https), gzip, RequestTimeout's 504, counters
// and the access log (proto "HTTP/3.0") — with the QUIC connection's
// addresses and TLS state standing for the connection, so mutual TLS
// and its headers work too. TLS is the server's config, with TLS 1.3
// and ALPN h3 forced; the ACL is checked at the ClientHello, so a
// refused client gets a CONNECTION_CLOSE and opens no stream. 0-RTT is
// off (quic.Config.Allow0RTT stays false): early data can be replayed by
// whoever captured it, and a proxy cannot tell which of its backends'
// requests are safe to repeat, so a resuming client waits one round trip
// and sends its request under the full handshake. A QUIC connection is sent a GOAWAY as its
// HTTP2MaxRequestsPerConnection-th request enters the handler: the
// requests it carries finish (streams accepted before the GOAWAY too, as
// over HTTP/2), and the client opens its next streams on a new
// connection; a stream that raced the GOAWAY is reset with
// H3_REQUEST_REJECTED, which clients retry on a new connection.
// A connection with no request in the handler for IdleTimeout is closed
// (H3_NO_ERROR) — whatever streams it holds open: a stream whose request
// head never arrives is idle, so it cannot keep a connection, and a
// connection sent a GOAWAY lingers at most IdleTimeout after its last
// request. The server pings every IdleTimeout/2, so QUIC's own idle
// timeout (IdleTimeout, which quic-go raises to about 5 s at least)
// closes only connections whose client has gone. Shutdown and Retire
// send GOAWAY and let requests in flight finish; Shutdown closes the
// connections with none as soon as what they sent can have been
// acknowledged (three probe timeouts), Retire leaves them to their clients,
// which close them after the GOAWAY, so that a request sent at that
// moment is not lost (one racing the GOAWAY is reset unprocessed and
// retried on a new connection). Every HTTP/1.1 and HTTP/2 response of such a server advertises
// HTTP/3 with an Alt-Svc field ([RFC 7838]) naming the UDP port, for
// ServerConfig.AltSvcMaxAge (DefaultAltSvcMaxAge, a day); the fast lane
// appends it from bytes made once. A backend's own Alt-Svc field is
// then dropped, in every lane: it names the backend's port, which
// clients cannot reach through the proxy. Without QUIC it passes
// unchanged. ServerConfig.QUICConnIDs (a *quiclb.Generator) makes the QUIC
// connection IDs carry the server's QUIC-LB server ID, so a router in
// front of several such servers sends a client that changed address
// back to the one holding its connection; ServerConfig.QUICKeys, shared
// by such servers, lets the one that receives a packet of a connection
// it does not hold reset it with a token the client accepts.
//
// Hostile QUIC traffic is bounded where it costs: at most
// ServerConfig.MaxQUICHandshakes handshakes are in progress at once
// (more are refused with CONNECTION_REFUSED), and from half of them on a
// new client must first echo a Retry token ([RFC 9000 §8.1.2]), so
// spoofed sources hold no state. Request streams per connection are
// quic-go's 100, and a connection whose streams never send a request
// head is closed at IdleTimeout (above).
//
// # Errors
//
// A request no backend served is answered 503 when no backend was
// available, 504 when the chosen one was silent for RequestTimeout and
// 502 otherwise, with a short plain-text body; a request body the client
// cut short or malformed within its first 64 KiB is answered 400 and
// reaches no backend. Options.ErrorHandler replaces these answers.
//
// # Compression
//
// With gzip on (the default), a response of one of nine text types
// (text/xml, text/plain, text/css, application/javascript,
// application/x-javascript, application/rss+xml, application/atom+xml,
// application/xml, application/json; parameters such as charset
// allowed) of at least 1 KiB, not already encoded, is gzip-compressed
// for a client whose Accept-Encoding accepts gzip; Vary:
// Accept-Encoding is added.
//
// [RFC 9000 §8.1.2]: https://www.rfc-editor.org/rfc/rfc9000#section-8.1.2
// [RFC 9114]: https://www.rfc-editor.org/rfc/rfc9114
// [RFC 7838]: https://www.rfc-editor.org/rfc/rfc7838
package httpproxy
