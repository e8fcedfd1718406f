// Package quiclb is the QUIC-LB connection-ID codec of
// [draft-ietf-quic-load-balancers]: QUIC servers choose connection IDs
// that carry their server ID, so a load balancer can route every packet of
// a connection to the same server even after the client's address changes
// (NAT rebinding, migration) and even for connection IDs the server handed
// out later in encrypted frames.
//
// # Model
//
// A configuration (Config) is shared by the load balancer and all servers:
// a config rotation codepoint (0–6), a server ID length, a nonce length,
// optionally an AES-128 key, and whether the first octet encodes the
// length. Each server also holds its own server ID. A connection ID is
//
//	first octet | server ID | nonce
//
// where the first octet's top three bits are the codepoint (7 means
// "unroutable: route by four-tuple") and its low five bits are the
// connection ID's length minus one (EncodeLength) or random. Server ID and
// nonce are then protected according to the Mode:
//
//   - Plaintext (no key): as is. Observers can read the server ID, so
//     connections are linkable across migrations; use it only where that
//     does not matter.
//   - SinglePass (key, server ID + nonce = 16 octets): one AES-128-ECB
//     block.
//   - FourPass (key, any other length): a four-round Feistel network
//     with AES-128-ECB as round function. A load balancer needs three AES
//     operations when the nonce is at least as long as the server ID, four
//     otherwise.
//
// A Generator is the server half: it implements quic-go's
// ConnectionIDGenerator, so a quic.Transport with
// Transport.ConnectionIDGenerator set to it issues only such IDs. Its
// nonce is a counter from a random start and never repeats; when the
// counter would wrap it reports ErrNonceExhausted (the draft's Section 8.6
// asks for a new configuration then). A Decoder is the load balancer
// half: Decoder.ServerID reads the server ID from a destination connection
// ID without allocating, and Decoder.Backend maps it through a ServerIDs
// table to a backend ID; anything it cannot decode (a client-chosen
// Initial DCID, codepoint 7, another configuration, a short ID) reports
// ok false and the caller falls back to a hash of the four-tuple or the
// DCID. Both are checked against the draft's test vectors.
//
// The draft's Section 2.3 gives the length five bits (three are the
// codepoint); its YANG model still says six, from before the third
// codepoint bit was added. This package follows Section 2.3 and the test
// vectors.
//
// # Operating it
//
//  1. Pick a configuration: ServerIDLen large enough for every server you
//     may ever run (1 octet: 256; 2: 65536), NonceLen for the number of
//     connection IDs each server issues per key (2^(8·NonceLen); quic-go
//     issues a few per connection), and a random 16-octet key. Total
//     ConnIDLen is at most 20 octets; 8 is common.
//  2. Assign each backend a distinct server ID and record the assignment
//     in a ServerIDs table (server ID → backend ID) on the load balancer.
//     Over-provisioning the ID space makes random DCIDs likelier to be
//     unroutable. IDs used with plaintext and encrypted configurations
//     must differ (draft Section 8.7).
//  3. Distribute the configuration, key included, to the load balancers
//     first and then to the servers, over a channel you trust; the key is
//     what keeps server IDs from observers. Rotate by publishing a new
//     configuration at another codepoint, keeping the old Decoder until
//     connections using it have ended.
//  4. On every backend, besides the Generator: give all backends the same
//     quic.Transport.StatelessResetKey, so a backend that receives a
//     packet for a connection it lost can reset it with the token the
//     client expects, and the same quic.Transport.TokenGeneratorKey, so
//     address-validation and resumption tokens issued by one backend are
//     accepted by another.
//  5. On the load balancer, tell the UDP listener the connection ID length
//     (Decoder.ConnIDLen) so it can read short headers, and route with
//     a Router (Decoder.Backend over a replaceable ServerIDs table),
//     falling back to the four-tuple when it reports false.
//
// # Behind an lbkit UDP listener
//
// A *Router is a listener.QUICRouter. Give the listener the qch scheduler,
// the router and the connection ID length:
//
//	dec, _ := quiclb.NewDecoder(cfg)
//	r, _ := quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: quiclb.ServerIDs{idA: "a", idB: "b"}})
//	qch, _ := balancer.ParseScheduler(balancer.NameQCH)
//	group, _ := balancer.New(balancer.Config{Scheduler: qch}, backends...)
//	l, _ := inst.Add(listener.Config{
//		Protocol:         listener.UDP,
//		Port:             443,
//		Group:            group,
//		QUICRouter:       r,
//		QUICConnIDLength: cfg.ConnIDLen(),
//	})
//
// The listener asks the router for every new flow (a client's address and
// port). A client's first flow starts with the Initial DCID the client
// chose, which decodes to nothing, so it goes by a hash of the four-tuple,
// and the flow table keeps it on that backend. When the client migrates
// or its NAT rebinds, its packets form a new flow whose DCID is one the
// backend issued: the router names that backend and the listener keeps
// the connection there (balancer.Group.PickSticky) while it is a healthy
// member. A DCID the router cannot map, or a backend that left, falls
// back to the four-tuple. Listener.Stats counts both outcomes
// (QUICRouted, QUICFallback). When backends change, update the group and
// call Router.SetServerIDs.
//
// See ExampleGenerator, ExampleDecoder and ExampleRouter, and the listener
// package's ExampleConfig_quicRouter for a quic-go server behind a UDP
// listener, through a client's migration.
//
// [draft-ietf-quic-load-balancers]: https://datatracker.ietf.org/doc/draft-ietf-quic-load-balancers/
package quiclb
