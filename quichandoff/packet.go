package quichandoff

import "encoding/binary"

// QUIC versions whose long-header packet types owner knows.
const (
	version1 = 0x00000001 // RFC 9000: Handshake is type 2
	version2 = 0x6b3343cf // RFC 9369: Handshake is type 3
)

// owner returns the generation bit of the destination connection ID of
// packet b, for servers whose IDs are cidLen octets, and whether b has
// one: a short-header packet, or a long-header Handshake packet of QUIC
// version 1 or 2 whose destination ID has that length. Initial and
// 0-RTT packets have none: the client chose their destination ID.
func owner(b []byte, cidLen int) (bit byte, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	if b[0]&0x80 == 0 { // short header: the ID follows the first octet
		if len(b) < 1+cidLen || cidLen == 0 {
			return 0, false
		}
		return b[1] & 1, true
	}
	if len(b) < 6 {
		return 0, false
	}
	typ := b[0] >> 4 & 3
	switch binary.BigEndian.Uint32(b[1:5]) {
	case version1:
		if typ != 2 {
			return 0, false
		}
	case version2:
		if typ != 3 {
			return 0, false
		}
	default:
		return 0, false
	}
	if int(b[5]) != cidLen || cidLen == 0 || len(b) < 6+cidLen {
		return 0, false
	}
	return b[6] & 1, true
}
