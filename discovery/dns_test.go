package discovery

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// source returns a DNS source asking z, feeding a new wrr group.
func source(t *testing.T, z *zone, cfg DNSConfig) (*DNS, *balancer.Group) {
	t.Helper()
	return sourceAt(t, z.addr, cfg)
}

// sourceAt returns a DNS source asking resolver, feeding a new wrr group.
func sourceAt(t *testing.T, resolver string, cfg DNSConfig) (*DNS, *balancer.Group) {
	t.Helper()
	g, err := balancer.New(balancer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resolver = resolver
	cfg.Logger = slog.New(slog.DiscardHandler)
	d, err := NewDNS(cfg, g)
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	return d, g
}

// members describes g's members as "addr/weight", with "/standby" for
// the standby tier, sorted.
func members(g *balancer.Group) string {
	var out []string
	for _, m := range g.Members() {
		s := m.Addr() + "/" + strconv.Itoa(m.Weight())
		if m.Standby() {
			s += "/standby"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func resolve(t *testing.T, d *DNS) time.Duration {
	t.Helper()
	next, err := d.Resolve(context.Background())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return next
}

func TestDNSAddresses(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "api.test. A", "api.test. 30 IN A 127.0.0.2", "api.test. 20 IN A 127.0.0.1")
	z.set(t, "api.test. AAAA", "api.test. 40 IN AAAA ::1")
	for _, tc := range []struct {
		name, family, want string
		ttl                time.Duration
	}{
		{"both", "", "127.0.0.1:8080/100 127.0.0.2:8080/100 [::1]:8080/100", 20 * time.Second},
		{"ipv4", "ipv4", "127.0.0.1:8080/100 127.0.0.2:8080/100", 20 * time.Second},
		{"ipv6", "ipv6", "[::1]:8080/100", 40 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, g := source(t, z, DNSConfig{Name: "api.test", Port: 8080, Family: tc.family})
			if next := resolve(t, d); next != tc.ttl {
				t.Errorf("Resolve = %v, want %v (the shortest TTL)", next, tc.ttl)
			}
			if got := members(g); got != tc.want {
				t.Errorf("members = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDNSSRV(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "_http._tcp.api.test. SRV",
		"_http._tcp.api.test. 60 IN SRV 10 60 8001 a.test.",
		"_http._tcp.api.test. 60 IN SRV 10 20 8002 b.test.",
		"_http._tcp.api.test. 60 IN SRV 20 0 8003 c.test.",
		"_http._tcp.api.test. 60 IN SRV 10 5 8004 .", // no service: ignored
	)
	// a.test in the additional section (no query needed), two addresses
	// sharing its weight; b.test and c.test asked for.
	z.setExtra(t, "a.test. 50 IN A 127.0.0.1", "a.test. 50 IN A 127.0.0.2", "x.test. 1 IN A 127.0.0.9")
	z.set(t, "b.test. A", "b.test. 15 IN A 127.0.0.3")
	z.set(t, "c.test. A", "c.test. 60 IN A 127.0.0.4")
	z.set(t, "c.test. AAAA", "c.test. 60 IN AAAA ::1")
	d, g := source(t, z, DNSConfig{Name: "_http._tcp.api.test.", Type: SRV})
	if next := resolve(t, d); next != 15*time.Second {
		t.Errorf("Resolve = %v, want 15s (b.test's address TTL)", next)
	}
	want := "127.0.0.1:8001/30 127.0.0.2:8001/30 127.0.0.3:8002/20 127.0.0.4:8003/1/standby [::1]:8003/1/standby"
	if got := members(g); got != want {
		t.Errorf("members = %s, want %s", got, want)
	}
	// Primary tier first: with both tiers healthy, only primaries are picked.
	for range 20 {
		p, err := g.Pick(balancer.Key{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Member.Standby() {
			t.Fatalf("Pick = %s, a standby member, while primaries are eligible", p.Member.ID())
		}
		p.Done(balancer.DoneInfo{})
	}
}

// A member an answer repeats keeps its state: counters, health, sessions.
func TestDNSMembersKeepState(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1")
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4"})
	resolve(t, d)
	p, err := g.Pick(balancer.Key{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetHealthy("127.0.0.1:80", false); err != nil {
		t.Fatal(err)
	}
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1", "api.test. 5 IN A 127.0.0.2")
	resolve(t, d)
	if got, want := members(g), "127.0.0.1:80/100 127.0.0.2:80/100"; got != want {
		t.Fatalf("members = %s, want %s", got, want)
	}
	m, _ := g.Member("127.0.0.1:80")
	if m.Outstanding() != 1 || m.Healthy() {
		t.Errorf("kept member: Outstanding %d, Healthy %v; want 1, false (state lost across the update)", m.Outstanding(), m.Healthy())
	}
	p.Done(balancer.DoneInfo{})
	if m.Outstanding() != 0 {
		t.Errorf("after Done: Outstanding %d, want 0", m.Outstanding())
	}
	// The same answer again changes nothing: no rebuild.
	changed := g.Changed()
	resolve(t, d)
	select {
	case <-changed:
		t.Error("an unchanged answer rebuilt the group")
	default:
	}
	if s := d.Stats(); s.Lookups != 3 || s.Updates != 2 || s.Members != 2 {
		t.Errorf("Stats = %+v, want 3 lookups, 2 updates, 2 members", s)
	}
}

// A member an operator drained stays drained when a changed answer keeps
// it; a member that left and came back starts Ready.
func TestDNSKeepsOperatorState(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1", "api.test. 5 IN A 127.0.0.2")
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4"})
	resolve(t, d)
	if err := g.SetState("127.0.0.1:80", balancer.Drain); err != nil {
		t.Fatal(err)
	}
	if err := g.SetState("127.0.0.2:80", balancer.Maint); err != nil {
		t.Fatal(err)
	}
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1", "api.test. 5 IN A 127.0.0.2", "api.test. 5 IN A 127.0.0.3")
	resolve(t, d)
	for id, want := range map[string]balancer.State{"127.0.0.1:80": balancer.Drain, "127.0.0.2:80": balancer.Maint, "127.0.0.3:80": balancer.Ready} {
		if m, ok := g.Member(id); !ok || m.State() != want {
			t.Errorf("member %s: State %v (present %v), want %v", id, m.State(), ok, want)
		}
	}
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.2", "api.test. 5 IN A 127.0.0.3")
	resolve(t, d)
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1", "api.test. 5 IN A 127.0.0.2", "api.test. 5 IN A 127.0.0.3")
	resolve(t, d)
	if m, _ := g.Member("127.0.0.1:80"); m.State() != balancer.Ready {
		t.Errorf("member back after leaving: State %v, want ready", m.State())
	}
}

// A failed or empty answer keeps the last good set, is counted, and
// backs off: MinTTL, doubling, up to 30s.
func TestDNSFaultsKeepLastGoodSet(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name    string
		fault   func(z *zone, t *testing.T)
		empty   bool
		wantErr string
	}{
		{"servfail", func(z *zone, _ *testing.T) { z.fault(dns.RcodeServerFailure, false, false) }, false, "SERVFAIL"},
		{"refused", func(z *zone, _ *testing.T) { z.fault(dns.RcodeRefused, false, false) }, false, "REFUSED"},
		{"timeout", func(z *zone, _ *testing.T) { z.fault(0, true, false) }, false, "timeout"},
		{"nxdomain", func(z *zone, t *testing.T) { z.set(t, "api.test. A") }, true, "no records"},
		{"nodata", func(z *zone, t *testing.T) {
			z.set(t, "api.test. A")
			z.set(t, "api.test. TXT", `api.test. 5 IN TXT "x"`)
		}, true, "no records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := newZone(t)
			z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1")
			d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4", MinTTL: 2 * time.Second, Timeout: 100 * time.Millisecond})
			resolve(t, d)
			tc.fault(z, t)
			for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
				next, err := d.Resolve(context.Background())
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve(failure %d) error = %v, want one saying %q", i+1, err, tc.wantErr)
				}
				if tc.empty != errors.Is(err, ErrNoRecords) {
					t.Errorf("errors.Is(%v, ErrNoRecords) = %v, want %v", err, !tc.empty, tc.empty)
				}
				if next != want {
					t.Errorf("Resolve(failure %d) = %v, want backoff %v", i+1, next, want)
				}
				if got := members(g); got != "127.0.0.1:80/100" {
					t.Fatalf("members after failure %d = %q, want the last good set", i+1, got)
				}
			}
			s := d.Stats()
			if got := s.Failures + s.Empty; got != 6 || (s.Empty == 6) != tc.empty {
				t.Errorf("Stats = %+v, want 6 counted as %s", s, map[bool]string{true: "Empty", false: "Failures"}[tc.empty])
			}
			// Recovery resets the backoff.
			z.fault(0, false, false)
			z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.2")
			if next := resolve(t, d); next != 5*time.Second {
				t.Errorf("Resolve after recovery = %v, want the TTL 5s", next)
			}
			if got := members(g); got != "127.0.0.2:80/100" {
				t.Errorf("members after recovery = %q, want 127.0.0.2:80/100", got)
			}
		})
	}
}

// An empty first answer leaves the group as it was (here: empty) and
// keeps trying.
func TestDNSEmptyFirstAnswer(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80})
	if _, err := d.Resolve(context.Background()); !errors.Is(err, ErrNoRecords) {
		t.Fatalf("Resolve = %v, want ErrNoRecords", err)
	}
	if len(g.Members()) != 0 || d.Members() != nil {
		t.Errorf("members = %q, want none", members(g))
	}
}

// A UDP answer with TC set is asked again over TCP.
func TestDNSTruncatedRetriesOverTCP(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "api.test. A", "api.test. 5 IN A 127.0.0.1", "api.test. 5 IN A 127.0.0.2")
	z.fault(0, false, true)
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4"})
	resolve(t, d)
	if got, want := members(g), "127.0.0.1:80/100 127.0.0.2:80/100"; got != want {
		t.Errorf("members = %s, want %s (from the TCP answer)", got, want)
	}
	if z.udp.Load() != 1 || z.tcp.Load() != 1 {
		t.Errorf("queries: %d UDP, %d TCP; want 1 and 1", z.udp.Load(), z.tcp.Load())
	}
}

// The wait before the next lookup is the TTL within MinTTL and MaxTTL.
func TestDNSTTLBounds(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	d, _ := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4", MinTTL: 3 * time.Second, MaxTTL: time.Minute})
	for _, tc := range []struct {
		ttl  int
		want time.Duration
	}{
		{0, 3 * time.Second},
		{1, 3 * time.Second},
		{30, 30 * time.Second},
		{86400, time.Minute},
	} {
		z.set(t, "api.test. A", "api.test. "+strconv.Itoa(tc.ttl)+" IN A 127.0.0.1")
		if next := resolve(t, d); next != tc.want {
			t.Errorf("TTL %d: Resolve = %v, want %v", tc.ttl, next, tc.want)
		}
	}
}

// Records that come and go: every answer that differs is applied, and
// the member that stays throughout keeps its counters.
func TestDNSFlapping(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4"})
	both := []string{"api.test. 0 IN A 127.0.0.1", "api.test. 0 IN A 127.0.0.2"}
	z.set(t, "api.test. A", both...)
	resolve(t, d)
	stay, _ := g.Member("127.0.0.1:80")
	stay.Begin()
	for i := range 10 {
		if i%2 == 0 {
			z.set(t, "api.test. A", both[0])
		} else {
			z.set(t, "api.test. A", both...)
		}
		resolve(t, d)
		want := map[bool]string{true: "127.0.0.1:80/100", false: "127.0.0.1:80/100 127.0.0.2:80/100"}[i%2 == 0]
		if got := members(g); got != want {
			t.Fatalf("flap %d: members = %s, want %s", i, got, want)
		}
		if m, _ := g.Member("127.0.0.1:80"); m.Outstanding() != 1 {
			t.Fatalf("flap %d: the member that stayed has Outstanding %d, want 1", i, m.Outstanding())
		}
	}
	if s := d.Stats(); s.Updates != 11 || s.Failures != 0 {
		t.Errorf("Stats = %+v, want 11 updates, no failures", s)
	}
}

// fakeClock hands Run's timers to the test, which fires them.
type fakeClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{asked: make(chan time.Duration), fire: make(chan time.Time)}
}

func (c *fakeClock) timer(d time.Duration) (<-chan time.Time, func() bool) {
	c.asked <- d
	return c.fire, func() bool { return true }
}

// Run looks up at once, then after each wait Resolve returned, until its
// context ends.
func TestDNSRunSchedule(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "api.test. A", "api.test. 7 IN A 127.0.0.1")
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4"})
	clock := newFakeClock()
	d.newTimer = clock.timer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	if got := <-clock.asked; got != 7*time.Second {
		t.Errorf("first wait = %v, want the TTL 7s", got)
	}
	if got := members(g); got != "127.0.0.1:80/100" {
		t.Errorf("members = %q after the first lookup", got)
	}
	z.fault(dns.RcodeServerFailure, false, false)
	clock.fire <- time.Time{}
	if got := <-clock.asked; got != time.Second {
		t.Errorf("wait after a failure = %v, want MinTTL 1s", got)
	}
	z.fault(0, false, false)
	z.set(t, "api.test. A", "api.test. 7 IN A 127.0.0.2")
	clock.fire <- time.Time{}
	if got := <-clock.asked; got != 7*time.Second {
		t.Errorf("wait after recovery = %v, want 7s", got)
	}
	if got := members(g); got != "127.0.0.2:80/100" {
		t.Errorf("members = %q after the third lookup", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

func TestDNSStartStop(t *testing.T) {
	leakcheck.Check(t)
	z := newZone(t)
	z.set(t, "api.test. A", "api.test. 7 IN A 127.0.0.1")
	d, g := source(t, z, DNSConfig{Name: "api.test", Port: 80, Family: "ipv4"})
	changed := g.Changed()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatalf("second Start = %v, want nil", err)
	}
	<-changed // the first lookup applied
	d.Stop()
	d.Stop()
	if err := d.Start(); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop = %v, want ErrStopped", err)
	}
	if got := members(g); got != "127.0.0.1:80/100" {
		t.Errorf("members after Stop = %q, want them kept", got)
	}
}

func TestDNSConfigErrors(t *testing.T) {
	g, _ := balancer.New(balancer.Config{})
	for _, tc := range []struct {
		name string
		cfg  DNSConfig
		want string
	}{
		{"no name", DNSConfig{Port: 80, Resolver: "127.0.0.1"}, `discovery: Name "": required`},
		{"bad name", DNSConfig{Name: "a..b", Port: 80, Resolver: "127.0.0.1"}, `discovery: Name "a..b": not a domain name`},
		{"no port", DNSConfig{Name: "a.test", Resolver: "127.0.0.1"}, `discovery: Port 0: out of range 1–65535 (required with Type A)`},
		{"srv port", DNSConfig{Name: "a.test", Type: SRV, Port: 80, Resolver: "127.0.0.1"}, `discovery: Port 80: must be zero with Type SRV: the records carry the port`},
		{"family", DNSConfig{Name: "a.test", Port: 80, Family: "v4", Resolver: "127.0.0.1"}, `discovery: Family "v4": want "ipv4", "ipv6" or ""`},
		{"resolver port", DNSConfig{Name: "a.test", Port: 80, Resolver: "127.0.0.1:0"}, `discovery: Resolver "127.0.0.1:0": port out of range 1–65535`},
		{"ttls", DNSConfig{Name: "a.test", Port: 80, Resolver: "127.0.0.1", MinTTL: time.Minute, MaxTTL: time.Second}, `discovery: MaxTTL 1s: below MinTTL 1m0s`},
		{"weight", DNSConfig{Name: "a.test", Port: 80, Resolver: "127.0.0.1", Weight: 70000}, `discovery: Weight 70000: out of range 1–65535`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDNS(tc.cfg, g)
			if err == nil || err.Error() != tc.want {
				t.Errorf("NewDNS error = %v, want %s", err, tc.want)
			}
		})
	}
	d, err := NewDNS(DNSConfig{Name: "a.test", Port: 80, Resolver: "127.0.0.1"}, g)
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Config(); c.Resolver != "127.0.0.1:53" || c.MinTTL != time.Second || c.MaxTTL != 5*time.Minute || c.Name != "a.test." {
		t.Errorf("defaults: %+v", c)
	}
}
