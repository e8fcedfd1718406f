package listener

import (
	"context"
	"net"
	"net/netip"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
)

// connect runs the attempt loop of a new TCP connection or UDP flow with
// key k that arrived on port: it dials backends over network ("tcp" or
// "udp") until one connects, records source-IP persistence, and returns
// the connection and its attempt, to be Done when the connection or flow
// ends. sticky names the backend to try first; empty means the client's
// persisted backend, if any. Every dial failure is a connect failure.
func (l *Listener) connect(ctx context.Context, network string, k balancer.Key, sticky string, port int) (net.Conn, attempt.Attempt, error) {
	if sticky == "" {
		sticky = l.affinity(k.Src.Addr())
	}
	a := attempt.Loop{Group: l.cfg.Group, Key: k, Sticky: sticky, Stop: ctx, Env: l.env()}
	d := net.Dialer{Timeout: l.cfg.ConnectTimeout}
	for a.Next() {
		m := a.Member()
		addr := m.Addr()
		if l.cfg.EndPort != 0 {
			addr = withPort(addr, port)
		}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			a.Fail(err, attempt.Unreachable)
			continue
		}
		at, ok := a.Connected()
		if !ok { // stopping
			c.Close()
			break
		}
		l.persist(k.Src.Addr(), m.ID())
		return c, at, nil
	}
	if a.Stopped() {
		return nil, attempt.Attempt{}, ctx.Err()
	}
	return nil, attempt.Attempt{}, a.Err()
}

// attemptEnv is the listener as its attempt loops see it: where they
// count and report outcomes (attempt.Env). A pointer conversion of the
// listener, so handing it to a loop allocates nothing.
type attemptEnv Listener

func (l *Listener) env() attempt.Env { return (*attemptEnv)(l) }

func (e *attemptEnv) NoBackend() { e.c.NoBackend.Add(1) }

func (e *attemptEnv) Failed(m *balancer.Member, err error, connect bool) {
	if connect {
		e.c.ConnectFailures.Add(1)
		e.c.Backend(m.ID()).ConnectFailures.Add(1)
	}
	e.cfg.Logger.Debug("backend attempt failed", "backend", m.ID(), "connect", connect, "err", err)
}

func (e *attemptEnv) Health(g *balancer.Group) attempt.Reporter {
	if hc := (*Listener)(e).checker(g); hc != nil {
		return hc
	}
	return nil // not a nil *health.Checker in a non-nil interface
}

// affinity returns the backend src was persisted to, if persistence is on
// and src has one: a TCP or UDP loop's Sticky.
func (l *Listener) affinity(src netip.Addr) string {
	if l.aff != nil {
		if id, ok := l.aff.Lookup(src); ok {
			return id
		}
	}
	return ""
}

// persist records that src now goes to id.
func (l *Listener) persist(src netip.Addr, id string) {
	if l.aff != nil {
		l.aff.Set(src, id)
	}
}
