package listener

import (
	"errors"
	"net"
	"testing"

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
