package listener

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

func TestInstanceStartStartsStopped(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	l1 := addListener(t, in, Config{Protocol: TCP, Stopped: true, Group: newGroup(t, nil, b.backend(100))})
	l2 := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, b.backend(100))})
	if l1.State() != Stopped || l2.State() != Running {
		t.Fatalf("states = %v, %v; want stopped, running", l1.State(), l2.State())
	}
	if c, err := net.Dial("tcp", listenerAddr(l1)); err == nil {
		c.Close()
		t.Fatal("a listener created stopped accepts connections")
	}
	if err := in.Start(); err != nil {
		t.Fatal(err)
	}
	if l1.State() != Running {
		t.Fatalf("after Start: %v", l1.State())
	}
	c, _, name := dialName(t, listenerAddr(l1))
	c.Close()
	if name != "b" {
		t.Errorf("reached %q", name)
	}
}

func TestSetScheduler(t *testing.T) {
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100})
	in := newInstance(t)
	l, err := in.Add(Config{Protocol: TCP, Port: 80, Stopped: true, Group: g})
	if err != nil {
		t.Fatal(err)
	}
	var ce *ConfigError
	if err := l.SetScheduler(balancer.Maglev{By: balancer.HashConnID}); !errors.As(err, &ce) || ce.Field != "Scheduler" {
		t.Errorf("SetScheduler(qch) on TCP = %v, want a ConfigError on Scheduler", err)
	}
	if err := l.SetScheduler(balancer.Maglev{By: balancer.HashFourTuple}); err != nil {
		t.Errorf("SetScheduler(tch) on TCP = %v", err)
	}
	if got := g.Scheduler().Name(); got != "tch" {
		t.Errorf("group scheduler = %s, want tch", got)
	}
}

type routeAll struct{ id string }

func (r routeAll) Route([]byte) (string, bool) { return r.id, true }

func TestQUICRouterOnlyOnUDP(t *testing.T) {
	g := newGroup(t, nil, balancer.Backend{ID: "b", Addr: "127.0.0.1:9", Weight: 100})
	in := newInstance(t)
	var ce *ConfigError
	if _, err := in.Add(Config{Protocol: TCP, Port: 80, Stopped: true, Group: g, QUICRouter: routeAll{"b"}}); !errors.As(err, &ce) || ce.Field != "QUICRouter" {
		t.Errorf("QUICRouter on TCP = %v, want a ConfigError on QUICRouter", err)
	}
	if _, err := in.Add(Config{Protocol: UDP, Port: 80, Stopped: true, Group: g, QUICRouter: routeAll{"b"}}); err != nil {
		t.Errorf("QUICRouter on UDP: %v", err)
	}
}

// Port 0 binds a port the system picks on every protocol; Port and Addrs
// report it, the listener serves on it, a restart binds it again, and
// several port-0 listeners live side by side under their default names.
func TestPortZero(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	echo := startEcho(t, "echo")
	udpBack := startUDPEcho(t, "udp")
	in := newUDPInstance(t)
	tcp1 := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, echo.backend(100))})
	tcp2 := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, echo.backend(100))})
	udp := addListener(t, in, Config{Protocol: UDP, Group: newGroup(t, nil, udpBack.backend(100))})
	web := addListener(t, in, Config{Protocol: HTTP, Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: deadAddr(t), Weight: 100})})
	tls := addListener(t, in, Config{Protocol: HTTPS, Group: newGroup(t, nil, balancer.Backend{ID: "b", Addr: deadAddr(t), Weight: 100}),
		HTTP: HTTPOptions{Certificate: ca.issue(t, "default", "default.test")}})
	for _, l := range []*Listener{tcp1, tcp2, udp, web, tls} {
		as := l.Addrs()
		if len(as) != 1 || l.Port() == 0 || addrPort(as[0]) != l.Port() || l.Stats().Port != l.Port() {
			t.Errorf("%s: Port() = %d, Stats().Port = %d, Addrs() = %v; want one address on the bound, nonzero port", l.Name(), l.Port(), l.Stats().Port, as)
		}
	}
	if tcp1.Name() != "tcp_0" || tcp2.Name() != "tcp_0.2" || tcp1.Port() == tcp2.Port() {
		t.Errorf("two port-0 TCP listeners: %s on %d, %s on %d; want tcp_0 and tcp_0.2 on different ports",
			tcp1.Name(), tcp1.Port(), tcp2.Name(), tcp2.Port())
	}
	c, _, name := dialName(t, listenerAddr(tcp1))
	c.Close()
	if name != "echo" {
		t.Errorf("tcp through the bound port reached %q, want echo", name)
	}
	if got := udpAsk(t, udpDial(t, "", listenerAddr(udp)), "hi"); got != "udp" {
		t.Errorf("udp through the bound port reached %q, want udp", got)
	}
	if code, _, _ := get(t, newClient(t), httpURL(web, "/")); code != http.StatusBadGateway {
		t.Errorf("http through the bound port = %d, want 502 from the dead backend", code)
	}
	resp, err := httpsClient(t, ca, nil, false).Get(httpsURL(tls, "/"))
	if err != nil {
		t.Fatalf("https through the bound port: %v", err)
	}
	resp.Body.Close()

	// A restart binds the same port: the listener does not move.
	port := tcp1.Port()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tcp1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tcp1.Start(); err != nil {
		t.Fatal(err)
	}
	if tcp1.Port() != port || addrPort(tcp1.Addrs()[0]) != port {
		t.Errorf("after a restart: Port() = %d, Addrs() = %v; want %d", tcp1.Port(), tcp1.Addrs(), port)
	}
	c, _, _ = dialName(t, listenerAddr(tcp1))
	c.Close()
}
