package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/ipv4"
)

// TestReloadKeepsHTTP3: reloads that replace the https listener on its
// port (a new Http3MaxHandshakes needs a new listener) keep the HTTP/3
// requests in flight on the replaced listener's QUIC connections: a
// download across the first reload, a slow request across the second.
// Each replacement takes the other parity of connection IDs on the
// socket and forwards the replaced one's packets to it; without that,
// the two read the socket as one generation and the replaced one's
// packets that the new one reads are lost.
func TestReloadKeepsHTTP3(t *testing.T) {
	leakcheck.Check(t)
	const size = h3BigSize
	b := newH3Backend()
	defer b.close()
	certFile, keyFile := tlsCertFiles(t)
	port := configPort(t)
	e := testEnv(t)
	e.qh = newQuicHandoff(0, nil, e.log)
	conf := func(handshakes int) *plan {
		t.Helper()
		f, err := Parse("reload.yaml", ".", []byte(b.config(certFile, keyFile, port, fmt.Sprintf(", Http3MaxHandshakes: %d", handshakes))))
		if err != nil {
			t.Fatal(err)
		}
		p, err := planFile(f, e)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, err := start(conf(1000), e)
	if err != nil {
		t.Fatal(err)
	}
	a.replaceTimeout = time.Minute // the replaced listener's requests end on their own
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.stop(ctx)
	}()
	// reload replaces the listener with one of handshakes in the
	// background, returning once the new one serves and a channel with
	// reload's error, sent once the replaced one has retired.
	reload := func(handshakes int) <-chan error {
		t.Helper()
		p := conf(handshakes)
		before := a.inst.Listeners()[0]
		done := make(chan error, 1)
		go func() { done <- a.reload(p) }()
		for a.inst.Listeners()[0] == before {
			select {
			case err := <-done:
				t.Fatalf("reload to %d handshakes: %v, the listener kept", handshakes, err)
			case <-time.After(time.Millisecond):
			}
		}
		return done
	}

	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	resp, err := c.Get(url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	done := reload(2000)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size-1<<20 {
		t.Fatalf("download across the first reload: %d more octets, %v; want %d", n, err, size-1<<20)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatalf("first reload: %v", err)
	}

	slow := getAsync(c, url+"/hold")
	<-b.held
	done = reload(3000)
	b.release()
	if r := <-slow; r.err != nil || r.body != "held" {
		t.Fatalf("slow request across the second reload: %q, %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second reload: %v", err)
	}
	resp2, err := c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.ProtoMajor != 3 {
		t.Errorf("after the reloads: %s, want HTTP/3", resp2.Proto)
	}
}

// TestQuicHandoffParityPerSocket: each incarnation attached to a socket
// takes the other parity of the one it replaces, while that one lives;
// a third, while the first still retires, takes the second's (only two
// can share the socket), and an upgrade is refused until the replaced
// ones have closed. The handoff names the parity the successor takes on
// each socket, and the successor takes it (or, from a predecessor that
// named none, its generation's).
func TestQuicHandoffParityPerSocket(t *testing.T) {
	leakcheck.Check(t)
	udp := loopbackUDP(t)
	q := newQuicHandoff(0, nil, discardLogger())
	incarnation := func(q *quicHandoff) (*handoffConn, *socketIDs) { return takeOver(t, q, udp) }
	parityOf := func(ids *socketIDs) int {
		t.Helper()
		id, err := ids.GenerateConnectionID()
		if err != nil {
			t.Fatal(err)
		}
		return int(id.Bytes()[0] & 1)
	}
	first, ids1 := incarnation(q)
	second, ids2 := incarnation(q)
	third, ids3 := incarnation(q)
	if got := []int{parityOf(ids1), parityOf(ids2), parityOf(ids3)}; got[0] != 0 || got[1] != 1 || got[2] != 1 {
		t.Errorf("parities of three incarnations, the first living: %v, want [0 1 1]", got)
	}
	if _, err := q.prepare(); err != errReplacedRetiring {
		t.Fatalf("upgrade while a replaced listener retires: %v, want errReplacedRetiring", err)
	}
	first.Close()
	second.Close()
	hs, err := q.prepare()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].key != quicLinkPrefix+quicConnKey(udp)+quicParitySep+"0" {
		t.Fatalf("handed %v, want one end named for parity 0", hs)
	}
	q.done(errors.New("the successor failed"))
	third.Close()

	for _, c := range []struct {
		name       string
		generation int
		want       int
	}{
		{hs[0].key, 1, 0},
		{quicLinkPrefix + quicConnKey(udp), 1, 1}, // a predecessor of one parity per process
	} {
		u := &upgrader{inherited: map[string]*os.File{c.name: hs[0].f}}
		hc, ids := incarnation(newQuicHandoff(c.generation, u, discardLogger()))
		if got := parityOf(ids); got != c.want {
			t.Errorf("successor of generation %d handed %q: parity %d, want %d", c.generation, c.name, got, c.want)
		}
		hc.Close()
	}
	hs[0].f.Close()
}

// TestQuicHandoffSwitchedRetires: once a reload has switched, the
// listener a new one replaced reads only what the new one forwards: a
// packet of its connection that the new one read reaches it although
// nothing more comes on the UDP socket (before the switch it would wait
// in the pair for the replaced one's next UDP read).
func TestQuicHandoffSwitchedRetires(t *testing.T) {
	leakcheck.Check(t)
	udp := loopbackUDP(t)
	q := newQuicHandoff(0, nil, discardLogger())
	old, _ := takeOver(t, q, udp)
	repl, _ := takeOver(t, q, udp)
	defer old.Close()
	defer repl.Close()
	q.switched()

	client, err := net.DialUDP("udp", nil, udp.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Short-header packets: the first octet, then the 8-octet
	// destination ID whose lowest bit is its owner's parity.
	for _, parity := range []byte{0, 1} {
		if _, err := client.Write([]byte{0x40, 0xa0 | parity, 1, 2, 3, 4, 5, 6, 7, 'p'}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(c *handoffConn) []byte {
		t.Helper()
		buf := make([]byte, 1500)
		ms := []ipv4.Message{{Buffers: [][]byte{buf}}}
		n, err := c.ReadBatch(ms, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms[:n] {
			if m.N > 0 {
				return buf[:m.N]
			}
		}
		t.Fatal("ReadBatch returned no packet")
		return nil
	}
	if p := read(repl); p[1]&1 != 1 {
		t.Fatalf("the new listener read %x, want its own (parity 1)", p)
	}
	// Without the switch, old would block here reading the UDP socket;
	// a deadline far off turns that into a failure, not a hang.
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if p := read(old); p[1]&1 != 0 {
		t.Fatalf("the replaced listener read %x, want its own (parity 0)", p)
	}
}

// takeOver attaches a new listener's HTTP/3 to udp in q, as a takeover
// does: on a descriptor of its own.
func takeOver(t *testing.T, q *quicHandoff, udp *net.UDPConn) (*handoffConn, *socketIDs) {
	t.Helper()
	f, err := netx.File(udp, udp.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	ids := &socketIDs{}
	return q.attach(pc.(*net.UDPConn), ids).(*handoffConn), ids
}

// loopbackUDP returns a UDP socket on 127.0.0.1, closed at cleanup.
func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	return udp
}
