package listener

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// udpBackend is a UDP backend that answers each datagram with what
// reply returns (nothing for nil).
type udpBackend struct {
	name string
	pc   *net.UDPConn
	got  atomic.Int64 // datagrams received
	done chan struct{}
}

// startUDPBackend starts a backend on addr ("127.0.0.1:0" for any port).
func startUDPBackend(t testing.TB, name, addr string, reply func(b []byte, from netip.AddrPort) []byte) *udpBackend {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &udpBackend{name: name, pc: pc, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b.got.Add(1)
			if r := reply(buf[:n], from); r != nil {
				pc.WriteToUDPAddrPort(r, from)
			}
		}
	}()
	t.Cleanup(b.close)
	return b
}

// startUDPEcho starts a backend that answers "name payload".
func startUDPEcho(t testing.TB, name string) *udpBackend {
	t.Helper()
	return startUDPEchoOn(t, name, "127.0.0.1:0")
}

func startUDPEchoOn(t testing.TB, name, addr string) *udpBackend {
	t.Helper()
	return startUDPBackend(t, name, addr, func(b []byte, _ netip.AddrPort) []byte {
		return append([]byte(name+" "), b...)
	})
}

func (b *udpBackend) addr() string { return b.pc.LocalAddr().String() }

func (b *udpBackend) close() {
	b.pc.Close()
	<-b.done
}

func (b *udpBackend) backend(weight int) balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.addr(), Weight: weight}
}

// deadUDPAddr returns a loopback UDP address nothing listens on: one that
// was bound a moment ago, so datagrams to it draw ICMP port unreachable.
func deadUDPAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// newUDPInstance is newInstance whose listeners are stopped at cleanup
// without the grace period: UDP flows would otherwise hold Stop until
// they idle out.
func newUDPInstance(t *testing.T) *Instance {
	t.Helper()
	in := newInstance(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		in.Stop(ctx)
	})
	return in
}

// addUDPListener adds a UDP listener on 127.0.0.1 at a free UDP port.
func addUDPListener(t *testing.T, in *Instance, cfg Config) *Listener {
	t.Helper()
	cfg.Protocol = UDP
	return addListener(t, in, cfg)
}

// startUDPServer runs a UDP server for l (added with Stopped) with
// options the public API does not reach, and stops it at cleanup.
func startUDPServer(t *testing.T, l *Listener, opt udpOptions) *udpServer {
	t.Helper()
	socks, err := bind(l.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := listenUDP(l, opt, socks)
	if err != nil {
		t.Fatal(err)
	}
	l.keepPort(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.shutdown(ctx)
	})
	return s
}

// udpDial returns a client socket from laddr ("" for any) to raddr.
func udpDial(t testing.TB, laddr, raddr string) *net.UDPConn {
	t.Helper()
	var la *net.UDPAddr
	if laddr != "" {
		la = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(laddr))
	}
	ra, err := net.ResolveUDPAddr("udp", raddr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", la, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpAsk sends msg and returns the name of the backend that echoed it.
func udpAsk(t testing.TB, c *net.UDPConn, msg string) string {
	t.Helper()
	name, err := udpAskErr(c, msg)
	if err != nil {
		t.Fatalf("%v via %v: %v", msg, c.RemoteAddr(), err)
	}
	return name
}

func udpAskErr(c *net.UDPConn, msg string) (string, error) {
	return udpAskWithin(c, msg, 5*time.Second)
}

// udpAskWithin is udpAskErr waiting at most d for the reply.
func udpAskWithin(c *net.UDPConn, msg string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	name, payload, ok := bytes.Cut(buf[:n], []byte(" "))
	if !ok || string(payload) != msg {
		return "", &echoError{got: string(buf[:n]), want: msg}
	}
	return string(name), nil
}

type echoError struct{ got, want string }

func (e *echoError) Error() string {
	return "echo " + strconv.Quote(e.got) + ", want name and " + strconv.Quote(e.want)
}

// udpSend sends b, failing the test on error.
func udpSend(t testing.TB, c *net.UDPConn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}
