package listener

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/netx"
)

// Two replicas of a tch listener, bound to different local addresses and
// ports, place every four-tuple on the same backend when they share a
// ServiceAddr — the one tch then hashes — and not without it; on TCP and
// on UDP.
func TestServiceAddrTCH(t *testing.T) {
	leaks(t)
	var tcpBs, udpBs []balancer.Backend
	for i := range 5 {
		tcpBs = append(tcpBs, startEcho(t, fmt.Sprintf("b%d", i)).backend(100))
		udpBs = append(udpBs, startUDPEcho(t, fmt.Sprintf("b%d", i)).backend(100))
	}
	vip := netip.MustParseAddrPort("192.0.2.10:443")
	tests := []struct {
		name     string
		proto    Protocol
		service  netip.AddrPort
		wantSame bool
	}{
		{"tcp, shared service address", TCP, vip, true},
		{"tcp, local addresses", TCP, netip.AddrPort{}, false},
		{"udp, shared service address", UDP, vip, true},
		{"udp, local addresses", UDP, netip.AddrPort{}, false},
	}
	for ti, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, send := tcpBs, dialFrom
			if tt.proto == UDP {
				bs, send = udpBs, askFrom
			}
			in := newUDPInstance(t) // stops at once: a UDP flow has no end of its own
			var addrs []string
			for _, host := range []string{"127.0.0.2", "127.0.0.3"} {
				tch, _ := balancer.ParseScheduler(balancer.NameTCH)
				l := addListener(t, in, Config{Protocol: tt.proto, Host: host, Group: newGroup(t, tch, bs...), ServiceAddr: tt.service})
				addrs = append(addrs, listenerAddr(l))
			}
			ref := newGroup(t, balancer.Maglev{By: balancer.HashFourTuple}, bs...)
			differ := 0
			for i := range 100 {
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(ti), byte(i + 1)}), uint16(41000+i))
				var got []string
				for _, addr := range addrs {
					got = append(got, send(t, src, addr))
				}
				if got[0] != got[1] {
					differ++
				}
				if !tt.wantSame {
					continue
				}
				if got[0] != got[1] {
					t.Fatalf("flow %v: replica 1 sent it to %s, replica 2 to %s", src, got[0], got[1])
				}
				p, err := ref.Pick(balancer.Key{Src: src, Dst: vip})
				if err != nil {
					t.Fatal(err)
				}
				if want := p.Member.ID(); got[0] != want {
					t.Fatalf("flow %v went to %s, want %s (tch over %v)", src, got[0], want, vip)
				}
				p.Done(balancer.DoneInfo{})
			}
			if !tt.wantSame && differ == 0 {
				t.Errorf("without ServiceAddr all 100 flows agreed across listeners on different addresses; the test cannot tell")
			}
		})
	}
}

// askFrom sends one datagram from src to addr through a UDP listener and
// returns the name of the backend that echoed it.
func askFrom(t *testing.T, src netip.AddrPort, addr string) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := pc.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort(addr)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("echo via %s from %v: %v", addr, src, err)
	}
	name, _, _ := strings.Cut(string(buf[:n]), " ")
	return name
}

// dialFrom connects from src to addr through a listener and returns the
// name the backend greets with.
func dialFrom(t *testing.T, src netip.AddrPort, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := netx.DialFrom(ctx, src, addr)
	if err != nil {
		t.Fatalf("dial %s from %v: %v", addr, src, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("greeting via %s from %v: %v", addr, src, err)
	}
	return strings.TrimSpace(string(buf[:n]))
}

// dstScheduler picks the first member and records the Dst of the last
// key it was given.
type dstScheduler struct{ last *atomic.Value }

func (s dstScheduler) Name() string { return "dst" }

func (s dstScheduler) Build(members []*balancer.Member) (balancer.Picker, error) {
	return dstPicker{s.last, members[0]}, nil
}

type dstPicker struct {
	last *atomic.Value
	m    *balancer.Member
}

func (p dstPicker) Pick(k balancer.Key) *balancer.Member {
	p.last.Store(k.Dst)
	return p.m
}

// An HTTP listener hands schedulers the same Dst as TCP and UDP ones:
// its ServiceAddr, or without one the connection's local address, in
// both lanes.
func TestServiceAddrHTTP(t *testing.T) {
	leaks(t)
	b := startHTTPBackend(t, "b", nil)
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	for _, fast := range []bool{true, false} {
		for _, service := range []netip.AddrPort{vip, {}} {
			t.Run(fmt.Sprintf("fast lane %v, service %v", fast, service), func(t *testing.T) {
				last := &atomic.Value{}
				var mw func(http.Handler) http.Handler
				if !fast {
					mw = func(h http.Handler) http.Handler { return h } // a middleware takes requests off the fast lane
				}
				l := addHTTP(t, Config{ServiceAddr: service, Group: newGroup(t, dstScheduler{last}, b.backend(100)), HTTP: HTTPOptions{Middleware: mw}})
				c := &http.Client{Timeout: 10 * time.Second}
				defer c.CloseIdleConnections()
				if code, _, _ := get(t, c, "http://"+listenerAddr(l)+"/"); code != 200 {
					t.Fatalf("status %d", code)
				}
				want := service
				if !want.IsValid() {
					want = netip.MustParseAddrPort(listenerAddr(l))
				}
				if got := last.Load(); got != want {
					t.Errorf("scheduler got Dst %v, want %v", got, want)
				}
			})
		}
	}
}
