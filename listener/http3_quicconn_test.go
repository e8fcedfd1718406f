package listener

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/quichandoff"
)

// quicWraps records the sockets HTTPOptions.QUICConn quicWraps and which
// wrappers were closed.
type quicWraps struct {
	mu     sync.Mutex
	ports  []int
	closed int
}

type countClose struct {
	*quichandoff.Conn
	w *quicWraps
}

func (c countClose) Close() error {
	c.w.mu.Lock()
	c.w.closed++
	c.w.mu.Unlock()
	return c.Conn.Close()
}

// TestHTTP3QUICConn: HTTPOptions.QUICConn wraps the UDP socket HTTP/3
// serves at every start, the one taken over by a replacing listener
// included; quic-go serves through the wrapper, and the listener
// closes the wrapper when it stops.
func TestHTTP3QUICConn(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	a, b := startHTTPBackend(t, "a", nil), startHTTPBackend(t, "b", nil)
	in := newInstance(t)
	port := freePort(t)
	var w quicWraps
	gen := quichandoff.NewGenerator(nil, 1)
	cfg := func(name string, be *httpBackend) Config {
		return Config{Name: name, Protocol: HTTPS, Host: "127.0.0.1", Port: port, Group: newGroup(t, nil, be.backend(100)),
			HTTP: HTTPOptions{HTTP3: true, TLSPolicy: tls13(t), Certificate: ca.issue(t, "default", "default.test"),
				QUICConnIDs: gen,
				QUICConn: func(udp *net.UDPConn) net.PacketConn {
					w.mu.Lock()
					w.ports = append(w.ports, udp.LocalAddr().(*net.UDPAddr).Port)
					w.mu.Unlock()
					return countClose{quichandoff.NewConn(udp, gen), &w}
				}}}
	}
	old := addListener(t, in, cfg("old", a))
	nl := replaceH3(t, in, ca, old, cfg("new", b))
	if err := nl.Stop(within(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ports) != 2 || w.ports[0] != port || w.ports[1] != port {
		t.Errorf("QUICConn quicWraps sockets on ports %v, want [%d %d]", w.ports, port, port)
	}
	if w.closed != 2 {
		t.Errorf("%d wrappers closed, want 2", w.closed)
	}
}
