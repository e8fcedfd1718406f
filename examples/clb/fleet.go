package main

import (
	"encoding/base64"
	"fmt"
	"net/netip"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/session"
)

// Fleet is what the replicas of one balancer share so that each decides
// as the others do (a clb extension; see docs/fleet.md): the keys of
// SERVERID cookies, of TLS session tickets and of QUIC-LB connection IDs.
// Schedulers need nothing here: the same file builds the same tables.
// Keys are base64 (standard, padded), written inline so that the one
// document — a file or an etcd key — carries everything. With a Fleet
// block, a listener with StickySession on needs CookieKey: a key made up
// per process would not be honoured by the other replicas.
type Fleet struct {
	// CookieKey is the HMAC key of SERVERID cookies, 16 bytes or more.
	// Omitted (and no Fleet block), each process makes a random one.
	CookieKey string
	// PreviousCookieKey is also accepted, for a rotation: deploy the new
	// CookieKey with the old one here, and remove it after CookieTimeout.
	PreviousCookieKey string
	// SessionTicketKeys are the https listeners' TLS session-ticket keys,
	// 32 bytes each: the first encrypts, each decrypts. Omitted, crypto/tls
	// makes its own per process and a session resumes only on the replica
	// that made it.
	SessionTicketKeys []string
	// QuicLb routes the flows of udp listeners with the qch scheduler by
	// the server ID in their QUIC connection IDs (IETF QUIC-LB).
	QuicLb *QuicLb
	// QuicStatelessResetKey and QuicTokenKey are the QUIC secrets of the
	// https listeners with EnableHttp3, 32 bytes each (http3_quiclb.go).
	// Omitted, no stateless resets and a random token key per listener
	// start.
	QuicStatelessResetKey string
	QuicTokenKey          string

	pos
	quicKeys                     listener.QUICKeys
	cookieKey, previousCookieKey []byte
	ticketKeys                   [][32]byte
	router                       *quiclb.Router // nil without QuicLb
}

// QuicLb is a QUIC-LB configuration: the backends' QUIC servers issue
// connection IDs under the same values (quiclb.Generator).
type QuicLb struct {
	ConfigId       int    // config rotation codepoint, 0–6; default 0
	ServerIdLength int    // octets, 1–15; default 2
	NonceLength    int    // octets, 4–18; default 5
	Key            string // base64 AES-128 key (16 bytes); omitted, server IDs are plaintext
	ServerIds      []QuicLbServerId
	pos
	cfg quiclb.Config // as decoded, once valid; for this replica's generator
}

// QuicLbServerId gives a backend server its QUIC-LB server ID.
type QuicLbServerId struct {
	ServerId string // a server's ServerId in any group
	Id       string // hex, ServerIdLength octets, e.g. "0a01"
	pos
}

// validateFleet checks the Fleet block and decodes its keys.
func (f *File) validateFleet(ps *problems) {
	fl := f.Fleet
	if fl == nil {
		return
	}
	c := checker{ps: ps, path: "Fleet", p: fl.pos}
	fl.cookieKey = c.base64Key("CookieKey", fl.CookieKey, session.MinKeyLen, 0)
	fl.previousCookieKey = c.base64Key("PreviousCookieKey", fl.PreviousCookieKey, session.MinKeyLen, 0)
	if fl.CookieKey == "" {
		for i, l := range f.Listeners {
			if switchOn(l.StickySession, false) {
				c.bad("CookieKey", "required: Listeners[%d] has StickySession on, and a per-process key would not be honoured by the other replicas", i)
				break
			}
		}
	}
	fl.ticketKeys = nil
	// Each key is reported at the line of the list.
	lc := checker{ps: ps, path: c.path, p: pos{line: fl.at("SessionTicketKeys")}}
	for i, s := range fl.SessionTicketKeys {
		var k [32]byte
		copy(k[:], lc.base64Key(fmt.Sprintf("SessionTicketKeys[%d]", i), s, len(k), len(k)))
		fl.ticketKeys = append(fl.ticketKeys, k)
	}
	if q := fl.QuicLb; q != nil {
		fl.router = q.router(f, checker{ps: ps, path: "Fleet.QuicLb", p: q.pos})
	}
	fl.quicKeys = fl.decodeQuicKeys(c)
}

// base64Key decodes the key at key, reporting it unless it is base64 of
// lo to hi bytes (hi 0: no upper bound). An empty value is no key.
func (c checker) base64Key(key, val string, lo, hi int) []byte {
	if val == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(val)
	switch {
	case err != nil:
		c.bad(key, "not base64 (standard, padded): %v", err)
	case hi == 0 && len(b) < lo:
		c.bad(key, "%d bytes, want at least %d", len(b), lo)
	case hi != 0 && (len(b) < lo || len(b) > hi):
		c.bad(key, "%d bytes, want %d", len(b), hi)
	default:
		return b
	}
	return nil
}

// router builds the QUIC-LB router, reporting what the library refuses.
func (q *QuicLb) router(f *File, c checker) *quiclb.Router {
	cfg := quiclb.Config{ConfigID: q.ConfigId, ServerIDLen: q.ServerIdLength, NonceLen: q.NonceLength}
	cfg.Key = c.base64Key("Key", q.Key, quiclb.KeyLen, quiclb.KeyLen)
	dec, err := quiclb.NewDecoder(cfg)
	if err != nil {
		c.lib("ConfigId", err)
		return nil
	}
	q.cfg = cfg
	servers := map[string]bool{}
	for _, s := range f.allServers() {
		servers[s.ServerId] = true
	}
	ids := quiclb.ServerIDs{}
	for i, s := range q.ServerIds {
		sc := checker{ps: c.ps, path: fmt.Sprintf("%s.ServerIds[%d]", c.path, i), p: s.pos}
		if sc.required("ServerId", s.ServerId) && !servers[s.ServerId] {
			sc.bad("ServerId", "%q: no such server in any group", s.ServerId)
		}
		if !sc.required("Id", s.Id) {
			continue
		}
		id, err := quiclb.ParseServerID(s.Id)
		if err != nil {
			sc.lib("Id", err)
			continue
		}
		if prev, dup := ids[id]; dup {
			sc.bad("Id", "%q already given to %q", s.Id, prev)
			continue
		}
		ids[id] = s.ServerId
	}
	r, err := quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: ids})
	if err != nil {
		c.lib("ServerIds", err)
		return nil
	}
	return r
}

// applyFleet sets what the Fleet block and the service address give the
// listener l: the destination tch hashes, the session-ticket keys of an
// https listener (the process's own without the Fleet's: see env), the
// QUIC-LB router of a qch one.
func (f *File) applyFleet(cfg *listener.Config, l Listener, e *env) {
	cfg.ServiceAddr = f.serviceAddr(l.ListenerPort)
	if cfg.Protocol == listener.HTTPS {
		cfg.HTTP.SessionTicketKeys = e.tickets.current()
	}
	fl := f.Fleet
	if fl == nil {
		return
	}
	if cfg.Protocol == listener.HTTPS && fl.ticketKeys != nil {
		cfg.HTTP.SessionTicketKeys = fl.ticketKeys
	}
	if cfg.HTTP.HTTP3 {
		cfg.HTTP.QUICKeys = fl.quicKeys
	}
	if fl.router != nil && cfg.Protocol == listener.UDP && l.Scheduler == balancer.NameQCH {
		cfg.QUICRouter = fl.router
		cfg.QUICConnIDLength = fl.router.Decoder().ConnIDLen()
	}
}

// updateFleet applies the Fleet block's live changes to a kept listener:
// session-ticket keys, and QUIC-LB server IDs into the router the
// listener runs with (which s then keeps, for the next reload).
func updateFleet(r *running, s *lspec) error {
	l := r.l
	if s.cfg.Protocol == listener.HTTPS {
		if err := l.SetSessionTicketKeys(s.cfg.HTTP.SessionTicketKeys); err != nil {
			return err
		}
	}
	cur, _ := r.spec.cfg.QUICRouter.(*quiclb.Router)
	next, _ := s.cfg.QUICRouter.(*quiclb.Router)
	if cur != nil && next != nil {
		if err := cur.SetServerIDs(next.ServerIDs()); err != nil {
			return err
		}
		s.cfg.QUICRouter = cur
	}
	return nil
}

// allServers is every server of every group.
func (f *File) allServers() []Server {
	all := append([]Server(nil), f.BackendServers...)
	for _, g := range f.VServerGroups {
		all = append(all, g.BackendServers...)
	}
	for _, g := range f.MasterSlaveServerGroups {
		all = append(all, g.MasterSlaveBackendServers...)
	}
	return all
}

// serviceAddr is what tch hashes as a flow's destination on the listener
// at port: the file's Address, the VIP every replica shares, when the
// file gives one; otherwise nothing, and each replica hashes its own
// local address.
func (f *File) serviceAddr(port int) netip.AddrPort {
	if f.Address == "" {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.MustParseAddr(f.Address), uint16(port))
}

// cookieKeys are the keys of SERVERID cookies: the Fleet's, or the
// process's own.
func (f *File) cookieKeys(e *env) (key, previous []byte) {
	if f.Fleet != nil && f.Fleet.cookieKey != nil {
		return f.Fleet.cookieKey, f.Fleet.previousCookieKey
	}
	return e.stickyKey, nil
}

// sameFleet reports whether a listener can keep running across a reload
// from old to new as far as the Fleet block goes: its cookie keys and
// QUIC-LB configuration and QUIC keys are fixed while it runs
// (session-ticket keys change live).
func sameFleet(old, new *File, l Listener) bool {
	a, b := old.Fleet, new.Fleet
	get := func(fl *Fleet) (string, string, QuicLb) {
		if fl == nil {
			return "", "", QuicLb{}
		}
		var q QuicLb
		if fl.QuicLb != nil {
			q = *fl.QuicLb
			q.pos = pos{}
			q.ServerIds = nil // their changes apply live, with the members
		}
		return fl.CookieKey, fl.PreviousCookieKey, q
	}
	ak, ap, aq := get(a)
	bk, bp, bq := get(b)
	if switchOn(l.StickySession, false) && (ak != bk || ap != bp) {
		return false
	}
	if http3On(&l) && !sameQuicKeys(a, b) {
		return false
	}
	// An https listener with HTTP/3 may issue IDs under QuicLb
	// (http3_quiclb.go).
	return l.Scheduler != balancer.NameQCH && !http3On(&l) || fmt.Sprint(aq) == fmt.Sprint(bq)
}
