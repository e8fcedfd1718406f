package discovery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/dnstest"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// Against a real server: A and AAAA from a hosts file dnsmasq rereads on
// SIGHUP, with its local TTL.
func TestDnsmasqAddresses(t *testing.T) {
	leakcheck.Check(t)
	m := dnstest.Start(t, 7, "127.0.0.1 web.svc.test\n::1 web.svc.test\n")
	d, g := sourceAt(t, m.Addr, DNSConfig{Name: "web.svc.test", Port: 8080})
	if next := resolve(t, d); next != 7*time.Second {
		t.Errorf("Resolve = %v, want dnsmasq's local TTL 7s", next)
	}
	if got, want := members(g), "127.0.0.1:8080/100 [::1]:8080/100"; got != want {
		t.Errorf("members = %s, want %s", got, want)
	}
	kept, _ := g.Member("127.0.0.1:8080")
	kept.Begin()
	m.SetHosts("127.0.0.1 web.svc.test\n127.0.0.2 web.svc.test\n")
	resolve(t, d)
	if got, want := members(g), "127.0.0.1:8080/100 127.0.0.2:8080/100"; got != want {
		t.Errorf("members after the hosts change = %s, want %s", got, want)
	}
	if m, _ := g.Member("127.0.0.1:8080"); m.Outstanding() != 1 {
		t.Errorf("kept member: Outstanding %d, want 1", m.Outstanding())
	}
	// The name gone: NXDOMAIN keeps the last good set.
	m.SetHosts("127.0.0.9 other.svc.test\n")
	if _, err := d.Resolve(context.Background()); !errors.Is(err, ErrNoRecords) {
		t.Errorf("Resolve with the name gone = %v, want ErrNoRecords", err)
	}
	if got, want := members(g), "127.0.0.1:8080/100 127.0.0.2:8080/100"; got != want {
		t.Errorf("members after NXDOMAIN = %s, want the last good %s", got, want)
	}
	kept.End()
}

// Against a real server: SRV records from dnsmasq's configuration, their
// targets from its hosts file; priority makes the tiers.
func TestDnsmasqSRV(t *testing.T) {
	leakcheck.Check(t)
	m := dnstest.Start(t, 0, "127.0.0.1 a.svc.test\n127.0.0.2 b.svc.test\n127.0.0.3 c.svc.test\n",
		"_http._tcp.svc.test,a.svc.test,8001,10,60",
		"_http._tcp.svc.test,b.svc.test,8002,10,30",
		"_http._tcp.svc.test,c.svc.test,8003,20,10")
	d, g := sourceAt(t, m.Addr, DNSConfig{Name: "_http._tcp.svc.test", Type: SRV, Family: "ipv4"})
	if next := resolve(t, d); next != time.Second {
		t.Errorf("Resolve = %v, want MinTTL 1s for TTL 0", next)
	}
	if got, want := members(g), "127.0.0.1:8001/60 127.0.0.2:8002/30 127.0.0.3:8003/10/standby"; got != want {
		t.Errorf("members = %s, want %s", got, want)
	}
	m.SetSRV(
		"_http._tcp.svc.test,a.svc.test,8001,10,60",
		"_http._tcp.svc.test,c.svc.test,8003,5,10")
	resolve(t, d)
	if got, want := members(g), "127.0.0.1:8001/60/standby 127.0.0.3:8003/10"; got != want {
		t.Errorf("members after the SRV change = %s, want %s", got, want)
	}
}
