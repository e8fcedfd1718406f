package httpproxy

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

var trustTestPlan = newHeaderPlan(&Options{TrustedProxies: []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:f::/48"),
}})

func TestHeaderPlanClient(t *testing.T) {
	trusted := netip.MustParseAddrPort("10.1.1.1:5000")
	stranger := netip.MustParseAddrPort("192.0.2.50:5000")
	for _, tc := range []struct {
		name   string
		peer   netip.AddrPort
		xff    []string
		client string // the request's client
		sent   string // X-Forwarded-For to the backend
	}{
		{"untrusted peer", stranger, []string{"198.51.100.9"}, "192.0.2.50:5000", "198.51.100.9, 192.0.2.50"},
		{"trusted peer, no field", trusted, nil, "10.1.1.1:5000", "10.1.1.1"},
		{"one hop", trusted, []string{"198.51.100.9"}, "198.51.100.9:0", "198.51.100.9"},
		{"trusted hops cut", trusted, []string{"203.0.113.1, 198.51.100.9, 10.2.2.2"}, "198.51.100.9:0", "203.0.113.1, 198.51.100.9"},
		{"across fields", trusted, []string{"203.0.113.1,198.51.100.9", "10.2.2.2", " 10.3.3.3 "}, "198.51.100.9:0", "203.0.113.1,198.51.100.9"},
		{"all trusted", trusted, []string{"10.9.9.9, 10.2.2.2"}, "10.9.9.9:0", "10.9.9.9"},
		{"garbage ends the walk", trusted, []string{"198.51.100.9, unknown, 10.2.2.2"}, "10.2.2.2:0", "198.51.100.9, unknown, 10.2.2.2"},
		{"garbage last", trusted, []string{"198.51.100.9, bogus"}, "10.1.1.1:5000", "198.51.100.9, bogus, 10.1.1.1"},
		{"empty entry", trusted, []string{"198.51.100.9,,10.2.2.2"}, "10.2.2.2:0", "198.51.100.9,,10.2.2.2"},
		{"with ports", trusted, []string{"198.51.100.9:4711, [2001:db8:f::1]:80"}, "198.51.100.9:4711", "198.51.100.9:4711"},
		{"ipv6 client", trusted, []string{"2001:db8:1::5, 2001:db8:f::9"}, "[2001:db8:1::5]:0", "2001:db8:1::5"},
		{"mapped peer", netip.MustParseAddrPort("[::ffff:10.1.1.1]:5000"), []string{"198.51.100.9"}, "198.51.100.9:0", "198.51.100.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := stdXFF(tc.xff)
			client, cut := trustTestPlan.client(tc.peer, &x)
			if client.String() != tc.client {
				t.Errorf("client = %v, want %s", client, tc.client)
			}
			r := &http.Request{Header: http.Header{}}
			if tc.xff != nil {
				r.Header[hdrXFF] = tc.xff
			}
			hc := newConnInfo(tc.peer, netip.MustParseAddrPort("127.0.0.1:80"), false)
			trustTestPlan.apply(r, hc, &identity{}, false, cut)
			if got := strings.Join(r.Header[hdrXFF], "|"); got != tc.sent {
				t.Errorf("X-Forwarded-For sent = %q, want %q", got, tc.sent)
			}
		})
	}
}

func TestHeaderPlanClientAllocs(t *testing.T) {
	q := &h1Request{raw: []byte("203.0.113.1, 198.51.100.9, 10.2.2.2")}
	q.xff[0], q.nxff = h1Line{0, int32(len(q.raw))}, 1
	peer := netip.MustParseAddrPort("10.1.1.1:5000")
	if n := testing.AllocsPerRun(100, func() { trustTestPlan.client(peer, q) }); n != 0 {
		t.Errorf("client allocates %v times, want 0", n)
	}
}

// FuzzXFFClient: whatever a trusted proxy sends, the walk finds a
// client that is the peer or an address of the field, and the field it
// cuts for the backend ends with that client.
func FuzzXFFClient(f *testing.F) {
	for _, s := range []string{"198.51.100.9", "a, 10.0.0.1", "1.2.3.4:5, [::1]:6,10.0.0.9", ",,", " ", "2001:db8:f::1%eth0", "10.0.0.1\x00"} {
		f.Add(s, "10.2.2.2")
	}
	peer := netip.MustParseAddrPort("10.1.1.1:5000")
	f.Fuzz(func(t *testing.T, a, b string) {
		x := stdXFF{a, b}
		client, cut := trustTestPlan.client(peer, &x)
		if cut == noCut {
			if client != peer {
				t.Fatalf("no cut, client %v, want the peer", client)
			}
			return
		}
		v := xffCutValue(x, cut)
		last := v[strings.LastIndexByte(v, ',')+1:]
		got, ok := parseXFFEntry(strings.Trim(last, " \t"))
		if !ok || got != client {
			t.Fatalf("%q: client %v, but the field sent ends with %q", x, client, last)
		}
	})
}
