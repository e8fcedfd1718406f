package quichandoff

import (
	"net"
	"syscall"
	"testing"
)

// BenchmarkSort is the cost a packet pays to be sorted: kept (this
// generation's), or forwarded over a pair (with a raw read taking it off
// the pair, so the pair never fills; the peer's own read, readForwarded,
// also makes the packet's *net.UDPAddr, as x/net's batch reads do).
func BenchmarkSort(b *testing.B) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	c := NewConn(udp, NewGenerator(nil, 0))
	defer c.Close()
	keep, hand, err := Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer keep.Close()
	if err := c.Forward(hand); err != nil {
		b.Fatal(err)
	}
	hand.Close()
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}
	p := make([]byte, 1200)
	p[0] = 0x40
	rc, err := keep.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, maxForwarded)
	// read takes the forwarded packet off the pair, as the peer would.
	read := func(fd uintptr) { syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT) }
	b.Run("kept", func(b *testing.B) {
		p[1] = 0x12
		b.ReportAllocs()
		for b.Loop() {
			c.mine(p, src)
		}
	})
	b.Run("forwarded and read", func(b *testing.B) {
		p[1] = 0x13
		b.ReportAllocs()
		for b.Loop() {
			c.mine(p, src)
			rc.Control(read)
		}
	})
}
