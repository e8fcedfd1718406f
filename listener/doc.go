// Package listener composes lbkit's packages into running proxies: an
// Instance (a CLB load-balancer instance: ID, service address, bandwidth
// cap) owns Listeners, each accepting client traffic on one protocol and
// port (or port range), filtering it with an acl.Policy, choosing a
// backend from a balancer.Group, optionally keeping clients on their
// backend (source-IP persistence from session), and proxying to it while
// health checks (from health) keep unhealthy backends out.
//
// Build a listener by describing it in a Config and calling Instance.Add,
// which validates every field up front — a bad value, a port already
// taken, a scheduler the protocol does not offer, an ACL of the other
// address family, caps beyond the instance's — and refuses the listener
// whole, naming the field and the value. Listeners start at once unless
// Config.Stopped is set; Stop is graceful (stop accepting, let
// connections finish until the context ends, then cut them), and Retire
// is Stop for when the sockets live on in a successor (an HTTP keep-alive
// connection closes after a response saying "Connection: close", an
// HTTP/2 one after a GOAWAY, not while idle; a UDP listener stops
// reading its sockets at once, its open flows only relaying replies;
// Listener.Files hands the sockets to another process); everything
// else changes live: backends, weights and health through the Group, ACL
// entries through the acl.Group, the policy and the bandwidth cap through
// Listener.SetACL and Listener.SetBandwidth.
//
// Instance.Apply changes several listeners as one step, all or nothing:
// a Change removes, adds and re-caps listeners, and Apply validates
// every Config, binds every new port and starts every new listener before
// it changes anything, undoing its steps on the first failure. A
// listener replaced by one on the same host and ports hands its sockets
// over (duplicated descriptors), so the ports never refuse a connection
// while the old listener drains; it retires (Listener.Retire), so no
// HTTP request fails and no UDP datagram is dropped either. A listener can also serve on a socket
// handed to it (Config.Listener, Config.PacketConn): inherited from
// another process, or passed by systemd's socket activation.
//
// # TCP
//
// Each connection is checked against the ACL at accept (refused ones are
// reset before any backend is dialed), placed by persistence or the
// scheduler, and dialed with Config.ConnectTimeout; a failed dial tries
// the next backend (up to three) and is reported to passive health
// checking. An optional PROXY protocol v1 or v2 header carries the
// client's address to the backend (TCP and UDP only: HTTP and HTTPS
// listeners refuse it and send X-Forwarded-For instead). The bytes then flow through the
// kernel's splice path, each direction copying what its socket has queued;
// a direction with nothing queued for 30 ms parks its socket in the
// listener's poller (internal/netpoll, on Linux) and its goroutine ends,
// so an idle connection holds no goroutine, buffer, pipe or timer and
// costs about 1.5 KiB of heap. A connection idle in both directions for
// Config.EstablishedTimeout is reset on both sides by the listener's one
// idle sweeper, at most half a second late. A client that shuts
// down its write side still gets the whole response. With
// Config.ConnectionDrain, the connections of a backend that is removed,
// drained or put in maintenance (balancer.Group.SetState) are closed once
// Config.ConnectionDrainTimeout has passed; without it they carry on until
// they end.
//
// # UDP
//
// Datagrams form per-client flows, each with its own connected socket to
// the backend chosen at the flow's first datagram; flows end after
// Config.IdleTimeout without traffic and are bounded by Config.MaxFlows.
// The ACL is checked on every datagram. With the qch scheduler the flow's
// first pick hashes the QUIC destination connection ID (RFC 8999
// invariants, long and short headers); a flow keeps its backend while the
// client's address is stable. With Config.QUICRouter (IETF QUIC-LB, see
// balancer/quiclb) every new flow is routed by the server ID in its
// connection ID, so a connection keeps its backend when the client
// migrates or its NAT rebinds; what the router cannot decode goes by
// four-tuple hash. PROXY protocol v2 prepends a header to each
// datagram. Over the bandwidth cap, datagrams are dropped rather than
// queued.
//
// # Replicas
//
// Replicas of one balancer decide alike when they are built from the
// same configuration: Maglev tables come from the sorted member IDs, and
// Config.ServiceAddr (the VIP they share) is the destination tch hashes
// instead of each replica's own local address. HTTPS listeners resume
// each other's TLS sessions under the same HTTPOptions.SessionTicketKeys;
// cookies need the same session.Config.Key. See docs/fleet.md.
//
// # Bandwidth
//
// Config.Bandwidth caps a listener in Mbps, each direction separately,
// shared by all its connections (golang.org/x/time/rate). Listeners
// without a cap share the instance's, if it has one; the caps of an
// instance's listeners may not sum beyond it.
//
// # Behind another balancer
//
// A fleet of listeners behind an L4 balancer must see
// the real client, not the balancer. Config.AcceptProxy names the
// balancers in front: a connection from one of them starts with a PROXY
// protocol header (v1 or v2, HAProxy's format), read on the
// connection's own goroutine within a timeout, and the client it names
// is the connection's client from then on: for the ACL (checked after
// the header, so the front needs no entry), source-IP persistence, the
// sch and tch keys, the PROXY header a TCP listener sends on, and an
// HTTP listener's X-Forwarded-For, X-Forwarded-Client-srcport,
// X-Forwarded-Port and access log. Connections from other peers are not
// read for a header: a forged one is just their first bytes. A
// malformed or missing (with Required) header resets the connection,
// counted in Stats.ProxyRefused; a v2 LOCAL header (the front's own
// health check) leaves the peer as the client.
//
// On HTTP and HTTPS listeners a proxy in front may instead name the
// client in X-Forwarded-For: HTTP.TrustedProxies (httpproxy.Options)
// says whose to believe. The listener's ACL is checked per request, on
// that client; see package httpproxy, "Trusted proxies".
//
// # Counters and logs
//
// Listener.Stats returns the listener's and each backend's counters:
// active and new connections (flows), bytes each way, ACL refusals,
// refused PROXY headers, connect failures, drops, drains and idle
// resets. Logs go to the
// Config.Logger or the instance's log/slog logger.
//
// # HTTP and HTTPS
//
// An HTTP listener is a reverse proxy configured by Config.HTTP
// (HTTPOptions: the proxying, httpproxy.Options, and what the listener
// does with connections): it runs package httpproxy's listener tier,
// handing it the ACL, the bandwidth cap, the logger, its counters and the
// attempt loop's reports, and keeps the TLS material. Every connection
// comes in through the proxy's own front door, which does the TLS
// handshake on HTTPS and gives HTTP/2 to a net/http server. HTTP/1.1
// keep-alive GET and HEAD requests of the common shape are served by a
// fast lane that parses request and response heads in place and
// forwards them nearly byte for byte over pooled backend connections,
// gzip-compressing for clients that accept it, allocating nothing; an
// idle plain-HTTP connection waits without a buffer, and after 5 ms
// without a goroutine (Linux). Every other request (bodies, upgrades,
// HTTP/1.0, anything unusual or malformed) is handed, with its
// connection, to the net/http server, which reads it through a guard that
// refuses with 400 and closes what net/http would accept but a proxy must
// not: Content-Length beside Transfer-Encoding, Content-Length twice,
// obs-fold line folding. The HTTP/2 preface on HTTP/1, an asterisk target
// other than OPTIONS' and an absolute target without a host are refused
// too. Request bodies are read up to 64 KiB before a backend is chosen, as
// nginx does, so a malformed or cut short body is the client's 400 and
// reaches no backend. Each request is checked against the ACL (403 if
// refused), passes the optional HTTPOptions.Middleware (where a WAF plugs
// in), is routed by the forwarding rules (host pattern as for extension
// domains, then the longest path prefix; Config.Group otherwise), placed
// by its session cookie or the scheduler (wrr, rr, wlc, hash, ewma; hash
// reads the header, cookie, path or query parameter HTTPOptions.HashBy
// names), and sent over HTTP/1.1 on a kept-alive backend connection
// (HTTP/1.0 on a connection of its own for HTTP/1.0 clients). Hop-by-hop fields are removed both ways
// (RFC 9110 §7.6.1); X-Forwarded-For (on by default), SLB-ID, SLB-IP,
// X-Forwarded-Proto, X-Forwarded-Port and X-Forwarded-Client-srcport are
// independent switches. A backend that cannot be connected to within
// Config.ConnectTimeout is reported to passive health checking and the
// next one is tried (up to three); so is any backend failure of a bodiless
// idempotent request. A request that cannot be sent twice (a POST, say)
// goes on a backend connection of its own, so that a backend closing an
// idle kept-alive connection as it is reused cannot fail it. The client
// then gets 503 when no backend is available, 502 when backends refused or
// reset, and 504 when one was silent for HTTPOptions.RequestTimeout, each
// with a one-line body. Idle keep-alive connections close after
// HTTPOptions.IdleTimeout; an HTTP/1.x connection carries at most
// HTTPOptions.MaxKeepAliveRequests requests (100), the last answered with
// "Connection: close", and an HTTP/2 connection
// HTTPOptions.HTTP2MaxRequestsPerConnection (1000) before a graceful
// GOAWAY, whose unprocessed streams clients retry on a new connection (an
// HTTP/3 connection too);
// headers must arrive within HTTPOptions.HeaderTimeout and fit
// HTTPOptions.MaxHeaderBytes (431 otherwise), and a request target must
// fit HTTPOptions.MaxURIBytes (414 otherwise). Responses of the nine
// text types of the CLB are gzip-compressed for clients that accept it
// (never twice). WebSocket upgrades are tunnelled both ways. With
// HTTPOptions.RedirectToPort every request is redirected to the
// instance's HTTPS listener instead.
//
// Cookie persistence (HTTPOptions.StickySession) inserts a SERVERID
// cookie or rewrites the application's, as package session describes; a
// cookie naming a backend that is gone, unhealthy or forged gets a fresh
// pick, and a draining backend (balancer.Drain) keeps its sessions but
// gets no new ones. Unlike the CLB, which sets no cookie on 3xx and 4xx
// responses and so loses stickiness across a login redirect, the listener
// handles the cookie on every status: in insert mode a 302 or 404 carries
// the cookie too; in rewrite mode the token rides on whatever cookie the
// application sets, on any status.
//
// An HTTPS listener adds TLS termination: a default certificate
// (HTTPOptions.Certificate), extension domains chosen by SNI
// (Listener.Certificates, an sni.Selector editable live), the TLS policy
// (tls_cipher_policy_1_0 unless HTTPOptions.TLSPolicy says otherwise;
// Listener.SetTLSPolicy), optional mutual TLS (HTTPOptions.ClientCAs,
// Listener.SetClientCAs) with client-certificate headers, HTTP/2 by ALPN
// (HTTP/1.1 to backends) and session resumption limited to 300 s.
// Certificate, domain, policy and CA changes apply to the next handshake
// without a restart. With HTTPOptions.HTTP3 an HTTPS listener also
// binds a UDP socket on its port and serves HTTP/3 on it through the
// same pipeline (httpproxy's HTTP/3 section), advertised by Alt-Svc on
// its HTTP/1.1 and HTTP/2 responses; its policy must allow TLS 1.3, no
// UDP listener of the instance may use the port, Files lists the UDP
// socket after the TCP one, and a replacement on the same port takes
// over both; with HTTPOptions.QUICConnIDs (a *quiclb.Generator) its
// QUIC connection IDs name it to a QUIC-LB router, such as a UDP
// listener with qch and a quiclb.Router in front of several replicas,
// which then keeps a migrating client on its replica, and with the
// fleet's HTTPOptions.QUICKeys a replica resets at once a connection it
// does not hold. HTTP listeners count requests by status class and
// upstream latency in Stats, and write an access log to
// HTTPOptions.AccessLog if set.
//
// See the package example for a TCP listener on loopback, the
// Instance.Add examples for HTTP and HTTPS, the HTTPOptions example for
// HTTP/3, the Config example for a
// handed socket and the Instance.Apply example for a replacement.
package listener
