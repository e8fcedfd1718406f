package quichandoff_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/testpki"
	"github.com/lbkit/lbkit/quichandoff"
	"github.com/quic-go/quic-go"
)

const testALPN = "lbkit-quichandoff-test"

// server is one generation's QUIC server (generationServer) whose
// streams answer: see answer.
type server struct {
	conn *quichandoff.Conn
	ln   *quic.Listener
}

func serve(t *testing.T, udp *net.UDPConn, generation int, tlsConf *tls.Config) *server {
	t.Helper()
	conn, ln, stop := generationServer(udp, generation, tlsConf, func(st *quic.Stream) { answer(st, byte(generation)) })
	t.Cleanup(stop)
	return &server{conn, ln}
}

// answer answers a stream's 8-octet size with the generation octet,
// then that many octets.
func answer(st *quic.Stream, gen byte) {
	defer st.Close()
	var size [8]byte
	if _, err := io.ReadFull(st, size[:]); err != nil {
		return
	}
	st.Write([]byte{gen})
	buf := make([]byte, 32<<10)
	for left := binary.BigEndian.Uint64(size[:]); left > 0; {
		n := min(left, uint64(len(buf)))
		for i := range buf[:n] {
			buf[i] = byte(left - uint64(i))
		}
		if _, err := st.Write(buf[:n]); err != nil {
			return
		}
		left -= n
	}
}

// download asks conn for size octets and returns the stream after the
// generation octet.
func download(t *testing.T, c *quic.Conn, size uint64) (*quic.Stream, byte) {
	t.Helper()
	st, err := c.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(binary.BigEndian.AppendUint64(nil, size)); err != nil {
		t.Fatal(err)
	}
	var gen [1]byte
	if _, err := io.ReadFull(st, gen[:]); err != nil {
		t.Fatal(err)
	}
	return st, gen[0]
}

// check reads n octets of a download with left octets to go.
func check(t *testing.T, st *quic.Stream, left, n uint64) uint64 {
	t.Helper()
	buf := make([]byte, 64<<10)
	for end := left - n; left > end; {
		k, err := st.Read(buf[:min(uint64(len(buf)), left-end)])
		left -= uint64(k)
		if err != nil {
			if err == io.EOF && left == end {
				break
			}
			t.Fatalf("download with %d octets to go: %v", left, err)
		}
	}
	return left
}

func dupUDP(t *testing.T, c *net.UDPConn) *net.UDPConn {
	t.Helper()
	f, err := netx.File(c, c.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return pc.(*net.UDPConn)
}

// TestHandoffMidDownload: generation 0 serves a download; generation 1
// starts on a duplicate of the socket; generation 0 retires (stops
// reading the socket) mid-download. The download completes, through
// generation 1's forwarding, and a new connection is generation 1's.
func TestHandoffMidDownload(t *testing.T) {
	leakcheck.Check(t)
	serverTLS, clientTLS := testpki.LoopbackTLS(t, testALPN)
	udp0, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	old := serve(t, udp0, 0, serverTLS)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func() *quic.Conn {
		t.Helper()
		c, err := quic.DialAddr(ctx, udp0.LocalAddr().String(), clientTLS, &quic.Config{MaxIdleTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseWithError(0, "") })
		return c
	}
	c := dial()
	const size = 8 << 20
	st, gen := download(t, c, size)
	if gen != 0 {
		t.Fatalf("first download served by generation %d, want 0", gen)
	}
	left := check(t, st, size, 1<<20)

	keep, hand, err := quichandoff.Pair()
	if err != nil {
		t.Fatal(err)
	}
	if err := old.conn.Link(keep); err != nil {
		t.Fatal(err)
	}
	keep.Close()
	succ := serve(t, dupUDP(t, udp0), 1, serverTLS)
	if err := succ.conn.Forward(hand); err != nil {
		t.Fatal(err)
	}
	hand.Close()
	old.ln.Close() // as a retiring server does: no new connections
	if err := old.conn.Retire(); err != nil {
		t.Fatal(err)
	}

	left = check(t, st, left, left)
	if left != 0 {
		t.Fatalf("download ended with %d octets to go", left)
	}
	// The old connection still carries a request after the retire.
	st2, gen := download(t, c, 1<<20)
	if gen != 0 {
		t.Errorf("request on the old connection served by generation %d, want 0", gen)
	}
	check(t, st2, 1<<20, 1<<20)
	_, gen = download(t, dial(), 0)
	if gen != 1 {
		t.Errorf("new connection served by generation %d, want 1", gen)
	}
}

func TestRetireWithoutLink(t *testing.T) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := quichandoff.NewConn(udp, quichandoff.NewGenerator(nil, 0))
	defer c.Close()
	if err := c.Retire(); err == nil {
		t.Fatal("Retire without Link: no error")
	}
}
