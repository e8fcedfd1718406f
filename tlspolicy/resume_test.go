package tlspolicy_test

import (
	"crypto/tls"
	"errors"
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

// rfc5077Cache keeps a client's old ticket when the server sends an empty
// one, as RFC 5077 §3.3 clients do (crypto/tls's client overwrites it).
type rfc5077Cache struct{ tls.ClientSessionCache }

func (c rfc5077Cache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		if ticket, _, err := cs.ResumptionState(); err == nil && len(ticket) == 0 {
			return
		}
	}
	c.ClientSessionCache.Put(key, cs)
}

func TestSessionLifetime(t *testing.T) {
	f := pki(t)
	for _, tc := range []struct {
		name    string
		version uint16
		limit   bool
		steps   []time.Duration // clock advance before each resumption attempt
		want    []bool          // DidResume after each step
	}{
		{"TLS1.2/within", tls.VersionTLS12, true, []time.Duration{299 * time.Second}, []bool{true}},
		{"TLS1.2/expired", tls.VersionTLS12, true, []time.Duration{301 * time.Second}, []bool{false}},
		// The limit counts from the full handshake, not from the last resumption.
		{"TLS1.2/renewed", tls.VersionTLS12, true, []time.Duration{200 * time.Second, 101 * time.Second}, []bool{true, false}},
		{"TLS1.3/within", tls.VersionTLS13, true, []time.Duration{299 * time.Second}, []bool{true}},
		{"TLS1.3/expired", tls.VersionTLS13, true, []time.Duration{301 * time.Second}, []bool{false}},
		// Control: crypto/tls alone resumes after 300 s, so the tests above
		// would notice if the limit were not applied.
		{"TLS1.2/control", tls.VersionTLS12, false, []time.Duration{301 * time.Second}, []bool{true}},
		{"TLS1.3/control", tls.VersionTLS13, false, []time.Duration{301 * time.Second}, []bool{true}},
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
			addr := startServer(t, srv, nil)

			cli := f.clientConfig()
			cli.Time = clock.Now
			cli.MinVersion, cli.MaxVersion = tc.version, tc.version
			cli.ClientSessionCache = rfc5077Cache{tls.NewLRUClientSessionCache(4)}

			cs, err := handshake(addr, cli)
			if err != nil || cs.DidResume {
				t.Fatalf("first handshake: DidResume=%v, err=%v; want a full handshake", cs.DidResume, err)
			}
			for i, d := range tc.steps {
				clock.Advance(d)
				cs, err := handshake(addr, cli)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if cs.DidResume != tc.want[i] {
					t.Fatalf("step %d (+%v): DidResume = %v, want %v", i, d, cs.DidResume, tc.want[i])
				}
			}
		})
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
