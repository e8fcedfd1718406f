package listener

// QUIC routing for UDP listeners: the qch scheduler hashes a packet's
// destination connection ID, which parseQUICDestConnID finds using only
// the version-independent invariants of RFC 8999, so it works for every
// QUIC version.
//
// [RFC 8999]: https://www.rfc-editor.org/rfc/rfc8999

// DefaultQUICConnIDLength is the short-header destination connection ID
// length assumed when Config.QUICConnIDLength is zero.
const DefaultQUICConnIDLength = 8

// maxQUICConnIDLength is QUIC version 1's bound on a connection ID (RFC
// 9000 §17.2); the invariants allow a long header to carry up to 255.
const maxQUICConnIDLength = 20

// parseQUICDestConnID returns the destination connection ID of the QUIC
// packet at the start of b, aliasing b (capacity-limited, so appending to
// it cannot overwrite b). It allocates nothing.
//
// A long header (first bit 1) carries its DCID length on the wire: flags
// (1 byte), version (4), DCID length (1), DCID (0–255), SCID length (1),
// SCID (0–255); the packet is accepted only if all of that is present. A
// short header (first bit 0) is the flags byte then the DCID, whose length
// is not on the wire: it is the length of the IDs the servers issue,
// shortLen. ok is false for anything shorter than its header, and for a
// short header when shortLen < 1. The fixed bit (0x40) is not checked: it
// is not an invariant and may be greased (RFC 9287).
func parseQUICDestConnID(b []byte, shortLen int) (dcid []byte, ok bool) {
	if len(b) == 0 {
		return nil, false
	}
	if b[0]&0x80 == 0 {
		end := 1 + shortLen
		if shortLen < 1 || len(b) < end {
			return nil, false
		}
		return b[1:end:end], true
	}
	const dcidAt = 1 + 4 + 1 // flags, version, DCID length
	if len(b) < dcidAt {
		return nil, false
	}
	end := dcidAt + int(b[dcidAt-1])
	if len(b) < end+1 { // the SCID length byte must follow
		return nil, false
	}
	if len(b) < end+1+int(b[end]) {
		return nil, false
	}
	return b[dcidAt:end:end], true
}

// connIDRouter is the seam for QUIC-LB (draft-ietf-quic-load-balancers):
// given the destination connection ID of a flow's first packet, it names
// the backend whose server ID the ID encodes. A UDP listener with a
// router asks it first, then confirms the answer with
// balancer.Group.PickSticky, which keeps the flow on that backend while it
// is in the group, healthy and in the active tier (even while it drains,
// as a connection that migrated is not new work). Otherwise — ok false (an ID
// the router cannot decode or map, such as a client-chosen Initial DCID)
// or a backend no longer eligible — the flow takes the usual first pick
// with no connection-ID hash in the Key, which is the draft's fallback: the
// client's persisted backend if PersistenceTimeout is on, else the
// scheduler, which for qch then hashes the four-tuple; the flow table
// keeps such a flow on its backend. Stats.QUICRouted and
// Stats.QUICFallback count the two outcomes.
//
// Without a router, qch hashes the DCID, so a QUIC connection keeps its
// backend while the client keeps its address (flows are keyed by the
// client's address and port), but not across a migration, after which the
// DCID is one the server chose. The router fixes that: a migrated client
// is a new flow, and the router is asked for every new flow whose first
// datagram has a non-empty DCID, from the flow's goroutine, so it must be
// safe for concurrent use; dcid is only valid during the call.
//
// The router is passed to listenUDP in udpOptions.route; startUDP passes
// Config.QUICRouter's Route method.
type connIDRouter func(dcid []byte) (backendID string, ok bool)
