package proxyin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	proxyproto "github.com/pires/go-proxyproto"
)

// pair returns the two ends of a loopback TCP connection: the peer's
// and the listener's, with the listener's two addresses.
func pair(t *testing.T) (peer, conn net.Conn, src, dst netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close(); conn.Close() })
	return peer, conn, conn.RemoteAddr().(*net.TCPAddr).AddrPort(), conn.LocalAddr().(*net.TCPAddr).AddrPort()
}

func policy(t *testing.T, required bool, prefixes ...string) *Policy {
	t.Helper()
	var ps []netip.Prefix
	for _, p := range prefixes {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	tr, _, ok := NewTrust(ps)
	if !ok {
		t.Fatal("NewTrust refused", ps)
	}
	return &Policy{From: tr, Required: required, Timeout: time.Minute}
}

func TestReadV2WithTLVs(t *testing.T) {
	peer, conn, src, dst := pair(t)
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 4242}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443})
	h.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")}})
	b, _ := h.Format()
	peer.Write(append(b, "GET /"...))
	res, err := policy(t, true, "127.0.0.0/8").Read(context.Background(), conn, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if res.Src.String() != "[2001:db8::7]:4242" || res.Dst.String() != "[2001:db8::1]:443" || !res.Proxied || string(res.Pending) != "GET /" {
		t.Errorf("Read = %v %v %v %q, want the header's client and the bytes after it", res.Src, res.Dst, res.Proxied, res.Pending)
	}
}

// TestReadUntrusted: a peer outside From is not read: its bytes, a
// PROXY header among them, stay on the connection.
func TestReadUntrusted(t *testing.T) {
	peer, conn, src, dst := pair(t)
	peer.Write([]byte("PROXY UNKNOWN\r\n"))
	res, err := policy(t, true, "10.0.0.0/8").Read(context.Background(), conn, src, dst)
	if err != nil || res.Src != src || res.Proxied || res.Pending != nil {
		t.Fatalf("Read = %+v, %v; want the peer, nothing read", res, err)
	}
	b := make([]byte, 15)
	if _, err := io.ReadFull(conn, b); err != nil || string(b) != "PROXY UNKNOWN\r\n" {
		t.Errorf("the connection then reads %q, %v; want the peer's header as data", b, err)
	}
}

// TestReadWait: the wait for a header ends at Timeout after Now, and
// when ctx ends; a silent peer is then refused if Required.
func TestReadWait(t *testing.T) {
	leakcheck.Check(t)
	_, conn, src, dst := pair(t)
	p := policy(t, true, "127.0.0.0/8")
	p.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	if _, err := p.Read(context.Background(), conn, src, dst); !errors.Is(err, ErrMissing) {
		t.Errorf("silent peer, wait over: %v, want ErrMissing", err)
	}
	p.Now = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := p.Read(ctx, conn, src, dst)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("silent peer, ctx cancelled: %v, want context.Canceled", err)
	}
}

func TestTrust(t *testing.T) {
	tr, _, _ := NewTrust([]netip.Prefix{netip.MustParsePrefix("10.1.2.3/8"), netip.MustParsePrefix("::ffff:192.0.2.0/120")})
	for a, want := range map[string]bool{"10.9.9.9": true, "::ffff:10.0.0.1": true, "192.0.2.200": true, "11.0.0.1": false, "2001:db8::1": false} {
		if got := tr.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
	if _, bad, ok := NewTrust([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}); ok || bad != 1 {
		t.Errorf("NewTrust with an invalid prefix: ok %v at %d, want refused at 1", ok, bad)
	}
	if n := testing.AllocsPerRun(100, func() { tr.Contains(netip.MustParseAddr("11.0.0.1")) }); n != 0 {
		t.Errorf("Contains allocates %v times, want 0", n)
	}
}

// TestNew: New fills in the default wait, keeps the clock, and reads no
// one without From.
func TestNew(t *testing.T) {
	from := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	now := func() time.Time { return time.Unix(1, 0) }
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"default", 0, 7 * time.Second},
		{"set", time.Second, time.Second},
	} {
		p, err := New("x", from, true, tc.timeout, 7*time.Second, now)
		if err != nil || p == nil || p.Timeout != tc.want || !p.Required || !p.From.Contains(netip.MustParseAddr("10.1.1.1")) || p.Now() != now() {
			t.Errorf("%s: New = %+v, %v; want Timeout %v, Required, 10/8, the clock", tc.name, p, err, tc.want)
		}
	}
	if p, err := New("x", nil, false, 0, time.Second, now); p != nil || err != nil {
		t.Errorf("New without From = %+v, %v; want nil, nil", p, err)
	}
}
