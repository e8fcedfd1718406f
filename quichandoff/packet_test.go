package quichandoff

import (
	"net"
	"os"
	"testing"

	"github.com/quic-go/quic-go"
)

func TestOwner(t *testing.T) {
	short := func(first byte) []byte { return append([]byte{0x40, first}, make([]byte, 20)...) }
	long := func(typ byte, version []byte, dcid ...byte) []byte {
		b := append([]byte{0xc0 | typ<<4}, version...)
		b = append(b, byte(len(dcid)))
		return append(append(b, dcid...), make([]byte, 20)...)
	}
	v1, v2 := []byte{0, 0, 0, 1}, []byte{0x6b, 0x33, 0x43, 0xcf}
	id1 := []byte{0x13, 2, 3, 4, 5, 6, 7, 8}
	id0 := []byte{0x12, 2, 3, 4, 5, 6, 7, 8}
	for _, tt := range []struct {
		name string
		p    []byte
		bit  byte
		ok   bool
	}{
		{"empty", nil, 0, false},
		{"short bit 1", short(0x13), 1, true},
		{"short bit 0", short(0x12), 0, true},
		{"short too short", []byte{0x40, 1, 2}, 0, false},
		{"v1 handshake", long(2, v1, id1...), 1, true},
		{"v1 handshake bit 0", long(2, v1, id0...), 0, true},
		{"v1 initial", long(0, v1, id1...), 0, false},
		{"v1 0-rtt", long(1, v1, id1...), 0, false},
		{"v1 retry", long(3, v1, id1...), 0, false},
		{"v2 handshake", long(3, v2, id1...), 1, true},
		{"v2 initial", long(1, v2, id1...), 0, false},
		{"version negotiation", long(2, []byte{0, 0, 0, 0}, id1...), 0, false},
		{"handshake other id length", long(2, v1, 1, 2, 3, 4), 0, false},
		{"long truncated", []byte{0xe0, 0, 0, 0, 1, 8, 1}, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bit, ok := owner(tt.p, 8)
			if bit != tt.bit || ok != tt.ok {
				t.Errorf("owner(% x) = %d, %v, want %d, %v", tt.p, bit, ok, tt.bit, tt.ok)
			}
		})
	}
}

func FuzzOwner(f *testing.F) {
	f.Add([]byte{0x40, 0x13, 1, 2, 3, 4, 5, 6, 7}, 8)
	f.Add([]byte{0xe0, 0, 0, 0, 1, 8, 0x13, 1, 2, 3, 4, 5, 6, 7, 0}, 8)
	f.Add([]byte{0xf0, 0x6b, 0x33, 0x43, 0xcf, 4, 1, 2, 3, 4}, 4)
	f.Add([]byte{0xc0, 0, 0, 0, 1, 8, 0x13}, 8)
	f.Fuzz(func(t *testing.T, p []byte, cidLen int) {
		cidLen = cidLen & 31 % 21
		bit, ok := owner(p, cidLen)
		if !ok {
			return
		}
		// The bit is the first octet of a destination ID of cidLen
		// octets inside p.
		if p[0]&0x80 == 0 && bit != p[1]&1 || p[0]&0x80 != 0 && (int(p[5]) != cidLen || bit != p[6]&1) {
			t.Fatalf("owner(% x, %d) = %d, true: not the destination ID's bit", p, cidLen, bit)
		}
	})
}

func TestGeneratorKeepsInner(t *testing.T) {
	inner := fixedGen{0xa4, 9, 9, 9, 9}
	for gen, want := range []byte{0xa4, 0xa5} {
		id, err := NewGenerator(inner, gen).GenerateConnectionID()
		if err != nil || id.Len() != 5 || id.Bytes()[0] != want || id.Bytes()[1] != 9 {
			t.Errorf("generation %d: % x, %v; want first octet %#x, the rest the inner generator's", gen, id.Bytes(), err, want)
		}
	}
}

type fixedGen []byte

func (g fixedGen) GenerateConnectionID() (quic.ConnectionID, error) {
	return quic.ConnectionIDFromBytes(g), nil
}
func (g fixedGen) ConnectionIDLen() int { return len(g) }

// TestNoAllocs: issuing an ID and sorting a packet, kept or forwarded,
// allocate nothing.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	g := NewGenerator(nil, 0)
	if n := testing.AllocsPerRun(100, func() { g.GenerateConnectionID() }); n != 0 {
		t.Errorf("GenerateConnectionID: %v allocations, want 0", n)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(udp, g)
	defer c.Close()
	keep, hand, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if err := c.Forward(hand); err != nil {
		t.Fatal(err)
	}
	hand.Close()
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}
	mine, theirs := []byte{0x40, 0x12, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{0x40, 0x13, 1, 2, 3, 4, 5, 6, 7, 8}
	if n := testing.AllocsPerRun(100, func() { c.mine(mine, src) }); n != 0 {
		t.Errorf("sorting a packet of this generation: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.mine(theirs, src) }); n != 0 {
		t.Errorf("forwarding a packet: %v allocations, want 0", n)
	}
	if !PeerOpen(keep) {
		t.Error("PeerOpen(keep) = false with the Conn's end open")
	}
}

// TestPeerOpen: an end of a Pair sees the other's close.
func TestPeerOpen(t *testing.T) {
	keep, hand, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if !PeerOpen(keep) {
		t.Error("PeerOpen = false with both ends open")
	}
	hand.Close()
	if PeerOpen(keep) {
		t.Error("PeerOpen = true after the other end closed")
	}
	var closed *os.File
	if PeerOpen(closed) {
		t.Error("PeerOpen(nil) = true")
	}
}
