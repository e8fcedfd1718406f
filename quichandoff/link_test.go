package quichandoff

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/net/ipv4"
)

// TestExchange drives the sorting of two generations on one socket
// packet by packet, with one reader at a time so the kernel's choice
// of reader is the test's: each process sends the other's packets over
// the pair with their source address, before and after the retire, and
// the retired one's reads end when the successor closes.
func TestExchange(t *testing.T) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dup, err := udp.File()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.FilePacketConn(dup)
	dup.Close()
	if err != nil {
		t.Fatal(err)
	}
	old := NewConn(udp, NewGenerator(nil, 0))
	defer old.Close()
	succ := NewConn(pc.(*net.UDPConn), NewGenerator(nil, 1))
	keep, hand, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Link(keep); err != nil {
		t.Fatal(err)
	}
	if err := succ.Forward(hand); err != nil {
		t.Fatal(err)
	}
	keep.Close()
	hand.Close()

	client, err := net.DialUDP("udp", nil, udp.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	send := func(gen byte, tag byte) {
		t.Helper()
		if _, err := client.Write([]byte{0x40, 0x10 | gen, 1, 2, 3, 4, 5, 6, 7, tag}); err != nil {
			t.Fatal(err)
		}
	}
	// read reads a batch from c and returns the tags of the packets
	// kept, checking each came from the client.
	read := func(who string, c *Conn) (tags []byte) {
		t.Helper()
		ms := make([]ipv4.Message, 4)
		for i := range ms {
			ms[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 1500)}, OOB: make([]byte, 64)}
		}
		n, err := c.ReadBatch(ms, 0)
		if err != nil {
			t.Fatalf("%s: ReadBatch: %v", who, err)
		}
		for _, m := range ms[:n] {
			if m.N == 0 {
				continue
			}
			if m.Addr.String() != client.LocalAddr().String() {
				t.Errorf("%s: packet from %v, want the client's %v", who, m.Addr, client.LocalAddr())
			}
			tags = append(tags, m.Buffers[0][m.N-1])
		}
		return tags
	}
	for _, step := range []struct {
		name  string
		send  [][2]byte // generation, tag
		c     *Conn
		want  string
		retir bool
	}{
		// The successor reads an old connection's packet and its own.
		{"successor sorts", [][2]byte{{0, 'a'}, {1, 'b'}}, succ, "b", false},
		// The old process reads its own, then what came over the pair.
		{"old reads forwarded", [][2]byte{{0, 'c'}}, old, "ca", false},
		// The old process hands the successor's packet the other way.
		{"old sorts", [][2]byte{{1, 'd'}, {0, 'e'}}, old, "e", false},
		{"successor reads forwarded", [][2]byte{{1, 'f'}}, succ, "fd", false},
		// Retired, the old process reads only the pair.
		{"successor after the retire", [][2]byte{{0, 'g'}, {1, 'h'}}, succ, "h", true},
		{"old after the retire", nil, old, "g", false},
	} {
		if step.retir {
			if err := old.Retire(); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range step.send {
			send(p[0], p[1])
		}
		if got := string(read(step.name, step.c)); got != step.want {
			t.Errorf("%s: read %q, want %q", step.name, got, step.want)
		}
	}
	succ.Close()
	ms := []ipv4.Message{{Buffers: [][]byte{make([]byte, 1500)}}}
	if _, err := old.ReadBatch(ms, 0); !errors.Is(err, errLinkClosed) {
		t.Errorf("retired, after the successor closed: ReadBatch error %v, want %v", err, errLinkClosed)
	}
}
