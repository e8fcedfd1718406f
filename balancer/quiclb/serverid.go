package quiclb

import (
	"encoding/hex"
	"strings"
)

// ServerID is a server ID of 1–15 octets, held inline so that decoding one
// allocates nothing. It is comparable, so it can key a map (see
// ServerIDs). The zero value is the empty ID, which no configuration
// accepts.
type ServerID struct {
	b [MaxServerIDLen]byte
	n uint8
}

// MakeServerID returns b as a ServerID, or a *ConfigError if b is not 1–15
// octets long.
func MakeServerID(b []byte) (ServerID, error) {
	var id ServerID
	if len(b) < MinServerIDLen || len(b) > MaxServerIDLen {
		return id, configErr("ServerID", hex.EncodeToString(b), "length out of range 1–15 octets")
	}
	id.n = uint8(copy(id.b[:], b))
	return id, nil
}

// ParseServerID parses a server ID written in hex, as in the draft's YANG
// model ("0a:1b" or "0a1b"), or returns a *ConfigError.
func ParseServerID(s string) (ServerID, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil {
		return ServerID{}, configErr("ServerID", s, "not hex")
	}
	return MakeServerID(b)
}

// Len returns the length of the ID in octets.
func (id ServerID) Len() int { return int(id.n) }

// Bytes returns a copy of the ID's octets.
func (id ServerID) Bytes() []byte { return append([]byte(nil), id.b[:id.n]...) }

// String returns the ID in hex.
func (id ServerID) String() string { return hex.EncodeToString(id.b[:id.n]) }

// ServerIDs maps the server IDs of one configuration to the backends
// (balancer.Backend IDs) that hold them; a load balancer builds it from
// the same table that assigned the IDs. Lookups allocate nothing.
//
// A ServerIDs must not be modified while in use: build a new one and swap
// it in (for instance behind an atomic.Pointer) when assignments change.
type ServerIDs map[ServerID]string

// Backend returns the backend whose server ID dcid encodes under d's
// configuration: d.ServerID then a lookup in ids. ok is false when the
// ID is not routable or names no assigned server, in which case the
// caller falls back (for QUIC-LB, to a four-tuple or DCID hash). It
// allocates nothing, so
//
//	func(dcid []byte) (string, bool) { return d.Backend(dcid, ids) }
//
// is a router for a UDP listener's qch path.
func (d *Decoder) Backend(dcid []byte, ids ServerIDs) (backendID string, ok bool) {
	id, ok := d.ServerID(dcid)
	if !ok {
		return "", false
	}
	backendID, ok = ids[id]
	return backendID, ok
}
