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
// connections finish until the context ends, then cut them); everything
// else changes live: backends, weights and health through the Group, ACL
// entries through the acl.Group, the policy and the bandwidth cap through
// Listener.SetACL and Listener.SetBandwidth.
//
// # TCP
//
// Each connection is checked against the ACL at accept (refused ones are
// reset before any backend is dialed), placed by persistence or the
// scheduler, and dialed with Config.ConnectTimeout; a failed dial tries
// the next backend (up to three) and is reported to passive health
// checking. An optional PROXY protocol v1 or v2 header carries the
// client's address to the backend. The bytes then flow through the
// kernel's splice path: between chunks each direction waits for data
// without reading it, so an idle connection holds no pipe and costs about
// 8 KiB. A connection idle in both directions for
// Config.EstablishedTimeout is reset on both sides. A client that shuts
// down its write side still gets the whole response. With
// Config.ConnectionDrain, the connections of a backend that is removed
// or set to weight 0 are closed once Config.ConnectionDrainTimeout has
// passed; without it they carry on until they end.
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
// # Bandwidth
//
// Config.Bandwidth caps a listener in Mbps, each direction separately,
// shared by all its connections (golang.org/x/time/rate). Listeners
// without a cap share the instance's, if it has one; the caps of an
// instance's listeners may not sum beyond it.
//
// # Counters and logs
//
// Listener.Stats returns the listener's and each backend's counters:
// active and new connections (flows), bytes each way, ACL refusals,
// connect failures, drops, drains and idle resets. Logs go to the
// Config.Logger or the instance's log/slog logger.
//
// HTTP and HTTPS listeners are not built yet.
//
// See the package example for a TCP listener on loopback.
package listener
