package tlspolicy_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/tlspolicy"
)

// fakeClock is a clock the tests move by hand: no sleeping.
type fakeClock struct{ offset atomic.Int64 }

var clockBase = time.Now()

func (c *fakeClock) Now() time.Time          { return clockBase.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// step is one connection of a session-lifetime test.
type step struct {
	at   time.Duration // clock time since the first connection
	want bool          // DidResume
}

// TestSessionLifetime makes connections in a row with one stock crypto/tls
// client cache, the clock moving between them: every ticket, including
// those issued on resumed connections, resumes while the original full
// handshake is at most SessionLifetime old, and not after; the next full
// handshake starts a new chain.
func TestSessionLifetime(t *testing.T) {
	f := pki(t)
	chain := []step{
		{0, false}, {60 * time.Second, true}, {120 * time.Second, true}, {180 * time.Second, true},
		{240 * time.Second, true}, {300 * time.Second, true},
		// The last ticket was issued 60 s ago, but its session is 301 s old.
		{301 * time.Second, false},
		{302 * time.Second, true}, {601 * time.Second, true}, {602 * time.Second, false},
	}
	expired := []step{{0, false}, {301 * time.Second, false}, {302 * time.Second, true}}
	// Control: crypto/tls alone resumes after 300 s, so the cases above
	// would notice if the limit were not applied.
	control := []step{{0, false}, {301 * time.Second, true}, {1000 * time.Second, true}}
	for _, tc := range []struct {
		name    string
		version uint16
		limit   bool
		keys    bool
		steps   []step
	}{
		{"TLS1.2/chain", tls.VersionTLS12, true, false, chain},
		{"TLS1.3/chain", tls.VersionTLS13, true, false, chain},
		{"TLS1.2/chain/keys", tls.VersionTLS12, true, true, chain},
		{"TLS1.3/chain/keys", tls.VersionTLS13, true, true, chain},
		{"TLS1.2/expired", tls.VersionTLS12, true, false, expired},
		{"TLS1.3/expired", tls.VersionTLS13, true, false, expired},
		{"TLS1.2/control", tls.VersionTLS12, false, false, control},
		{"TLS1.3/control", tls.VersionTLS13, false, false, control},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
			if err != nil {
				t.Fatal(err)
			}
			srv := p.Config()
			if !tc.limit {
				srv = &tls.Config{}
				p.Apply(srv)
			}
			srv.Time = clock.Now
			srv.Certificates = []tls.Certificate{f.ecdsa}
			if tc.keys {
				srv.SetSessionTicketKeys([][32]byte{{1}})
			}
			addr := startServer(t, srv, nil)
			cli := f.clientConfig()
			cli.Time = clock.Now
			cli.MinVersion, cli.MaxVersion = tc.version, tc.version
			cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			var at time.Duration
			for i, s := range tc.steps {
				clock.Advance(s.at - at)
				at = s.at
				cs, err := handshake(addr, cli)
				if err != nil {
					t.Fatalf("connection %d (+%v): %v", i, s.at, err)
				}
				if cs.DidResume != s.want {
					t.Errorf("connection %d (+%v): DidResume = %v, want %v", i, s.at, cs.DidResume, s.want)
				}
			}
		})
	}
}

// TestResumptionUnderOuterConfig serves a LimitSessionLifetime config from
// another config's GetConfigForClient. Without forwarding to the inner
// GetConfigForClient, a resumed connection's ticket goes undated and
// does not resume: the limit still holds, resumption only stops early.
// Forwarded, as LimitSessionLifetime documents, the chain resumes.
func TestResumptionUnderOuterConfig(t *testing.T) {
	f := pki(t)
	for _, tc := range []struct {
		name    string
		forward bool
		want    []bool
	}{
		{"forwarded", true, []bool{false, true, true, true}},
		{"not forwarded", false, []bool{false, true, false, true}},
	} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, tls.VersionName(version)), func(t *testing.T) {
				p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
				if err != nil {
					t.Fatal(err)
				}
				inner := p.Config()
				inner.Certificates = []tls.Certificate{f.ecdsa}
				outer := &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
					if tc.forward {
						return inner.GetConfigForClient(hi)
					}
					return inner, nil
				}}
				addr := startServer(t, outer, nil)
				cli := f.clientConfig()
				cli.MinVersion, cli.MaxVersion = version, version
				cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				for i, want := range tc.want {
					cs, err := handshake(addr, cli)
					if err != nil {
						t.Fatalf("connection %d: %v", i, err)
					}
					if cs.DidResume != want {
						t.Errorf("connection %d: DidResume = %v, want %v", i, cs.DidResume, want)
					}
				}
			})
		}
	}
}

func TestLimitSessionLifetimeRange(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, 999 * time.Millisecond, 8 * 24 * time.Hour} {
		err := tlspolicy.LimitSessionLifetime(&tls.Config{}, d)
		var ce *tlspolicy.ConfigError
		if !errors.As(err, &ce) || ce.Field != "SessionLifetime" {
			t.Errorf("LimitSessionLifetime(%v) = %v, want a ConfigError for SessionLifetime", d, err)
		}
	}
	if err := tlspolicy.LimitSessionLifetime(&tls.Config{}, time.Second); err != nil {
		t.Errorf("LimitSessionLifetime(1s) = %v", err)
	}
}

// TestAdvertisedTicketLifetime pins what a client is told about a ticket's
// lifetime, which crypto/tls does not let a server set (see
// LimitSessionLifetime, "Known gap"): a TLS 1.3 NewSessionTicket says 7
// days and a TLS 1.2 one carries no lifetime hint (0, "unspecified"), so
// clients offer tickets after SessionLifetime and get a full handshake.
// If this test fails, crypto/tls changed: advertise SessionLifetime if it
// now can, and update the doc.
func TestAdvertisedTicketLifetime(t *testing.T) {
	f := pki(t)
	p, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Config()
	srv.Certificates = []tls.Certificate{f.ecdsa}
	addr := startServer(t, srv, nil)
	changed := "crypto/tls changed: advertise SessionLifetime (%v) if it now can and update LimitSessionLifetime's doc"

	t.Run("TLS1.3", func(t *testing.T) {
		// The client notes when the ticket expires from the lifetime the
		// server advertised: it is encrypted on the wire.
		cache := &recordingCache{}
		cli := f.clientConfig()
		cli.MinVersion = tls.VersionTLS13
		cli.ClientSessionCache = cache
		start := time.Now().Truncate(time.Second)
		if _, err := handshake(addr, cli); err != nil {
			t.Fatal(err)
		}
		if cache.last == nil {
			t.Fatal("the client was given no ticket")
		}
		_, ss, err := cache.last.ResumptionState()
		if err != nil {
			t.Fatal(err)
		}
		useBy := time.Unix(int64(reflect.ValueOf(ss).Elem().FieldByName("useBy").Uint()), 0)
		if got, want := useBy.Sub(start), 7*24*time.Hour; got < want || got > want+2*time.Second {
			t.Errorf("advertised lifetime %v, want crypto/tls's fixed %v; "+changed, got, want, tlspolicy.SessionLifetime)
		}
	})
	t.Run("TLS1.2", func(t *testing.T) {
		// TLS 1.2 sends NewSessionTicket before ChangeCipherSpec, in the
		// clear: read its lifetime hint off the wire.
		raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recordingConn{Conn: raw}
		cli := f.clientConfig()
		cli.MaxVersion = tls.VersionTLS12
		cli.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		tc := tls.Client(rec, cli)
		defer tc.Close()
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		hint, ok := ticketLifetimeHint(rec.read.Bytes())
		if !ok {
			t.Fatal("no NewSessionTicket in the server's plaintext handshake")
		}
		if hint != 0 {
			t.Errorf("lifetime hint %d s, want crypto/tls's 0 (unspecified); "+changed, hint, tlspolicy.SessionLifetime)
		}
	})
}

// recordingCache keeps the last session a client was given.
type recordingCache struct{ last *tls.ClientSessionState }

func (c *recordingCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (c *recordingCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.last = cs
	}
}

// recordingConn keeps every byte read from the server.
type recordingConn struct {
	net.Conn
	read bytes.Buffer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Write(b[:n])
	return n, err
}

// ticketLifetimeHint finds the TLS 1.2 NewSessionTicket (RFC 5077 §3.3)
// among the plaintext handshake records before ChangeCipherSpec and
// returns its ticket_lifetime_hint.
func ticketLifetimeHint(stream []byte) (uint32, bool) {
	var hs []byte // handshake messages, records joined
	for len(stream) >= 5 {
		typ, n := stream[0], int(binary.BigEndian.Uint16(stream[3:5]))
		if len(stream) < 5+n || typ != 22 { // 22: handshake; CCS (20) ends the plaintext
			break
		}
		hs = append(hs, stream[5:5+n]...)
		stream = stream[5+n:]
	}
	for len(hs) >= 4 {
		typ, n := hs[0], int(hs[1])<<16|int(hs[2])<<8|int(hs[3])
		if len(hs) < 4+n {
			break
		}
		if typ == 4 && n >= 4 { // 4: new_session_ticket
			return binary.BigEndian.Uint32(hs[4:8]), true
		}
		hs = hs[4+n:]
	}
	return 0, false
}
