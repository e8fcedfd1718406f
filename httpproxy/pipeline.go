package httpproxy

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/attempt"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/stats"
	"github.com/lbkit/lbkit/session"
)

// The request pipeline both lanes share: route picks the group and the
// hash key, sticky reads the session cookie, forward runs the one attempt
// loop over an exchanger (each lane's way of sending a request and
// reading a response head), and failure (errors.go) maps what ended the
// loop to an answer. The lanes differ only in how they read the request
// and write the response.

// route is the routing step: the group of a request's host and path
// (Options.Rules) and its hash key (Options.HashBy), read through hr
// before the header plan edits the request, for a request from client
// (headerPlan.client) on connection hc.
func (s *server) route(client netip.AddrPort, hc *connInfo, host, path string, hr hashRequest) (*balancer.Group, balancer.Key) {
	return s.c.routes.group(host, path), s.c.hash.key(client, netx.ServiceDst(s.sc.ServiceAddr, hc.dst), hr)
}

// sticky reads the sticky session the Cookie fields of h carry and
// removes the proxy's own cookie from them; without sticky sessions it
// returns the zero Session and leaves h alone.
func (s *server) sticky(h http.Header) session.Session {
	if st := s.c.sticky; st != nil {
		return st.Request(h)
	}
	return session.Session{}
}

// An exchanger sends one request to backends, one attempt at a time.
type exchanger interface {
	// try sends the request to m and reads the response head, which the
	// exchanger then holds; on error it holds nothing.
	try(m *balancer.Member) error
	// failure classifies an error of try for the attempt loop.
	failure(err error) attempt.Failure
	// drop lets go of the response try got, when the loop is stopped
	// before it can be used.
	drop()
}

// forwarded is a request a backend answered: its member and counters,
// and the attempt to end with done once the response is sent.
type forwarded struct {
	m    *balancer.Member
	bc   *stats.Backend
	at   attempt.Attempt
	head time.Duration // from sending the request to the response head
}

// forward runs the attempt loop for a request to group g with key k,
// sticking to backend sticky if it may: each attempt's exchange is x's.
// It returns the attempt that got a response head, or ok false: then
// stopped says stop ended the loop (the client left, the server is
// cutting requests), else err is why no backend answered (nil when none
// was available).
func (s *server) forward(stop context.Context, g *balancer.Group, k balancer.Key, sticky string, x exchanger) (f forwarded, ok, stopped bool, err error) {
	a := attempt.Loop{Group: g, Key: k, Sticky: sticky, Stop: stop, Env: s.env}
	for a.Next() {
		m := a.Member()
		bc := s.backend(m.ID())
		bc.Active.Add(1)
		bc.New.Add(1)
		if err := x.try(m); err != nil {
			bc.Active.Add(-1)
			a.Fail(err, x.failure(err))
			continue
		}
		at, ok := a.Connected()
		if !ok {
			x.drop()
			bc.Active.Add(-1)
			return forwarded{}, false, true, nil
		}
		return forwarded{m: m, bc: bc, at: at, head: at.Succeeded()}, true, false, nil
	}
	return forwarded{}, false, a.Stopped(), a.Err()
}

// done ends a forwarded request once its response is sent.
func (f *forwarded) done() {
	f.bc.Active.Add(-1)
	f.at.Done(balancer.DoneInfo{Latency: f.head})
}
