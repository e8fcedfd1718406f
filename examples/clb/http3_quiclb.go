package main

import (
	"fmt"
	"sync"

	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/internal/cfgerr"
	"github.com/lbkit/lbkit/listener"
	"github.com/quic-go/quic-go"
)

// http3QuicLb is this replica's QUIC-LB identity for the HTTP/3 of its
// https listeners (a clb extension): with -quic-lb-server-id, they issue
// connection IDs that carry that server ID under the Fleet's QuicLb
// configuration, so a QUIC-LB-aware router in front of the replicas — a
// clb udp listener with Scheduler qch whose Fleet.QuicLb lists them —
// keeps a migrating HTTP/3 client on its replica.
//
// The zero value (and nil) issues no QUIC-LB IDs. The one generator is
// shared by every listener and plan of the process while the
// configuration stays the same: two generators with one server ID may
// issue the same ID. Safe for concurrent use.
type http3QuicLb struct {
	id quiclb.ServerID // -quic-lb-server-id; zero for quic-go's random IDs

	mu  sync.Mutex
	cfg string // the configuration gen was made for, printed
	gen *quiclb.Generator
}

// generator returns the generator for f's Fleet.QuicLb, nil without
// -quic-lb-server-id; it reports a flag that does not fit the
// configuration.
func (h *http3QuicLb) generator(f *File, ps *problems) quic.ConnectionIDGenerator {
	if h == nil || h.id.Len() == 0 {
		return nil
	}
	if f.Fleet == nil || f.Fleet.QuicLb == nil {
		ps.add(0, "Fleet.QuicLb", "required by -quic-lb-server-id %s: the configuration this replica's HTTP/3 connection IDs are issued under", h.id)
		return nil
	}
	q := f.Fleet.QuicLb
	if f.Fleet.router == nil {
		return nil // the block's own problems are reported
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if key := fmt.Sprint(q.cfg); h.gen == nil || h.cfg != key {
		gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: q.cfg, ServerID: h.id})
		if err != nil {
			checker{ps: ps, path: "Fleet.QuicLb", p: q.pos}.bad("ServerIdLength", "-quic-lb-server-id %s: %s", h.id, cfgerr.Reason(err))
			return nil
		}
		h.cfg, h.gen = key, gen
	}
	return h.gen
}

// parseQuicLbServerID reads -quic-lb-server-id: nil for none.
func parseQuicLbServerID(s string) (*http3QuicLb, error) {
	if s == "" {
		return nil, nil
	}
	id, err := quiclb.ParseServerID(s)
	if err != nil {
		return nil, fmt.Errorf("-quic-lb-server-id %q: %s", s, cfgerr.Reason(err))
	}
	return &http3QuicLb{id: id}, nil
}

// decodeQuicKeys decodes the Fleet's QUIC secrets, reporting a key that
// is not base64 of 32 bytes.
func (fl *Fleet) decodeQuicKeys(c checker) listener.QUICKeys {
	var k listener.QUICKeys
	if b := c.base64Key("QuicStatelessResetKey", fl.QuicStatelessResetKey, 32, 32); b != nil {
		k.StatelessReset = (*quic.StatelessResetKey)(b)
	}
	if b := c.base64Key("QuicTokenKey", fl.QuicTokenKey, 32, 32); b != nil {
		k.Token = (*quic.TokenGeneratorKey)(b)
	}
	return k
}

// sameQuicKeys reports whether a and b give HTTP/3 the same QUIC
// secrets: a listener takes them at its start.
func sameQuicKeys(a, b *Fleet) bool {
	keys := func(fl *Fleet) [2]string {
		if fl == nil {
			return [2]string{}
		}
		return [2]string{fl.QuicStatelessResetKey, fl.QuicTokenKey}
	}
	return keys(a) == keys(b)
}
