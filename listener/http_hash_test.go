package listener

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/session"
	"github.com/quic-go/quic-go/http3"
)

// hashFixture is a listener over four named backends with the hash
// scheduler, and a reference group of the same members to tell which
// backend a key belongs to.
type hashFixture struct {
	l   *Listener
	g   *balancer.Group
	ref *balancer.Group
	ca  *testCA // HTTPS
}

func newHashFixture(t *testing.T, proto Protocol, fast bool, opts HTTPOptions) *hashFixture {
	t.Helper()
	var members []balancer.Backend
	for _, n := range []string{"a", "b", "c", "d"} {
		members = append(members, startHTTPBackend(t, n, nil).backend(0))
	}
	sched := balancer.Maglev{By: balancer.HashKey}
	g := newGroup(t, sched, members...)
	f := &hashFixture{g: g, ref: newGroup(t, sched, members...)}
	if proto == HTTPS {
		// HTTP/3 on for the HTTP/3 lane; the HTTP/2 lane's clients
		// speak TCP.
		f.ca = newCA(t, "ca")
		opts.Certificate = f.ca.issue(t, "default", "default.test")
		opts.HTTP3, opts.TLSPolicy = true, tls13(t)
	}
	noFastLane = !fast
	f.l = addHTTP(t, Config{Protocol: proto, Group: g, HTTP: opts})
	noFastLane = false
	return f
}

// owner is the backend the reference group picks for key.
func (f *hashFixture) owner(k balancer.Key) string {
	p, err := f.ref.Pick(k)
	if err != nil {
		panic(err)
	}
	p.Done(balancer.DoneInfo{})
	return p.Member.ID()
}

func valueKey(v string) balancer.Key { return balancer.Key{Hash: xxhash.Sum64String(v), HasHash: true} }

// loopbackKey is the key of a request without the hashed value: the
// source IP, whatever the port.
var loopbackKey = balancer.Key{Src: netip.MustParseAddrPort("127.0.0.1:1")}

type hashLane struct {
	name  string
	proto Protocol
	fast  bool
	major int // the HTTP version the lane's client speaks
}

var hashLanes = []hashLane{
	{"fast lane", HTTP, true, 1},
	{"net/http", HTTP, false, 1},
	{"HTTP/2", HTTPS, true, 2},
	{"HTTP/3", HTTPS, true, 3},
}

// client returns a client of the lane, its transport's CloseIdleConnections
// to start new connections, and the URL of path.
func (ln hashLane) client(t *testing.T, f *hashFixture, jar http.CookieJar) (*http.Client, func(), func(path string) string) {
	if ln.major == 3 {
		c := protoClient(t, "h3", f.ca, nil, "")
		c.Jar = jar
		return c, c.Transport.(*http3.Transport).CloseIdleConnections, func(p string) string { return httpsURL(f.l, p) }
	}
	if ln.proto == HTTPS {
		c := httpsClient(t, f.ca, nil, ln.major == 2)
		c.Jar = jar
		return c, c.CloseIdleConnections, func(p string) string { return httpsURL(f.l, p) }
	}
	c := newClient(t)
	c.Jar = jar
	return c, c.CloseIdleConnections, func(p string) string { return httpURL(f.l, p) }
}

// fetch gets path with the header pairs and returns the backend that
// answered, checking the protocol the client spoke.
func (ln hashLane) fetch(t *testing.T, c *http.Client, url string, hdr ...string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := ln.major; resp.ProtoMajor != want || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d over %s, want 200 over HTTP/%d", url, resp.StatusCode, resp.Proto, want)
	}
	return resp.Header.Get("X-Backend")
}

func (f *hashFixture) checkFastLane(t *testing.T, ln hashLane) {
	t.Helper()
	served := served(f.l)
	if ln.fast && ln.major == 1 && served == 0 || !ln.fast && served != 0 {
		t.Errorf("the fast lane served %d requests", served)
	}
}

// TestHTTPHashBy sends each of many header values over several
// connections in each lane: every request lands on the value's backend
// (the xxhash of the value on the hash scheduler's table), the values
// spread over every backend, and requests without the header land where
// sch would put the client.
func TestHTTPHashBy(t *testing.T) {
	leaks(t)
	for _, ln := range hashLanes {
		t.Run(ln.name, func(t *testing.T) {
			f := newHashFixture(t, ln.proto, ln.fast, HTTPOptions{Options: httpproxy.Options{HashBy: HashPolicy{Header: "X-User"}}})
			c, reconnect, url := ln.client(t, f, nil)
			spread := map[string]int{}
			for round := range 3 {
				for i := range 24 {
					user := fmt.Sprintf("user-%d", i)
					got, want := ln.fetch(t, c, url("/"), "X-User", user), f.owner(valueKey(user))
					if got != want {
						t.Fatalf("round %d: X-User %s went to %s, want %s", round, user, got, want)
					}
					if round == 0 {
						spread[got]++
					}
				}
				for range 3 {
					if got, want := ln.fetch(t, c, url("/")), f.owner(loopbackKey); got != want {
						t.Fatalf("round %d: no X-User went to %s, want %s (the source IP's)", round, got, want)
					}
				}
				reconnect()
			}
			if len(spread) != 4 {
				t.Errorf("24 users went to %v, want all four backends", spread)
			}
			f.checkFastLane(t, ln)
		})
	}
}

// TestHTTPHashSources runs each source through the listener: the value
// decides the backend in every lane, HTTP/2 and HTTP/3 included.
func TestHTTPHashSources(t *testing.T) {
	leaks(t)
	tests := []struct {
		name string
		p    HashPolicy
		req  func(v string) (path string, hdr []string)
	}{
		{"cookie", HashPolicy{Cookie: "uid"}, func(v string) (string, []string) { return "/", []string{"Cookie", "a=1; uid=" + v} }},
		{"path", HashPolicy{Path: true}, func(v string) (string, []string) { return "/" + v, nil }},
		{"query", HashPolicy{Query: "id"}, func(v string) (string, []string) { return "/p?x=1&id=" + v, nil }},
	}
	for _, tt := range tests {
		for _, ln := range hashLanes {
			t.Run(tt.name+"/"+ln.name, func(t *testing.T) {
				f := newHashFixture(t, ln.proto, ln.fast, HTTPOptions{Options: httpproxy.Options{HashBy: tt.p}})
				c, _, url := ln.client(t, f, nil)
				spread := map[string]int{}
				for i := range 16 {
					v := fmt.Sprintf("v%d", i)
					path, hdr := tt.req(v)
					if tt.p.Path {
						v = path
					}
					got, want := ln.fetch(t, c, url(path), hdr...), f.owner(valueKey(v))
					if got != want {
						t.Fatalf("value %s went to %s, want %s", v, got, want)
					}
					spread[got]++
				}
				if len(spread) < 3 {
					t.Errorf("16 values went to %v, want at least three backends", spread)
				}
				f.checkFastLane(t, ln)
			})
		}
	}
}

// TestHTTPHashSticky: a valid session cookie wins over the hash; a forged
// one leaves the pick to the hash.
func TestHTTPHashSticky(t *testing.T) {
	leaks(t)
	for _, ln := range hashLanes {
		t.Run(ln.name, func(t *testing.T) {
			f := newHashFixture(t, ln.proto, ln.fast, HTTPOptions{
				Options: httpproxy.Options{HashBy: HashPolicy{Header: "X-User"}, StickySession: &session.Config{}},
			})
			// Two users whose hashes name different backends.
			u1, u2 := "user-0", ""
			for i := 1; u2 == ""; i++ {
				if u := fmt.Sprintf("user-%d", i); f.owner(valueKey(u)) != f.owner(valueKey(u1)) {
					u2 = u
				}
			}
			jar, _ := cookiejar.New(nil)
			c, _, url := ln.client(t, f, jar)
			if got, want := ln.fetch(t, c, url("/"), "X-User", u1), f.owner(valueKey(u1)); got != want {
				t.Fatalf("first request of %s went to %s, want %s", u1, got, want)
			}
			for range 3 {
				if got, want := ln.fetch(t, c, url("/"), "X-User", u2), f.owner(valueKey(u1)); got != want {
					t.Fatalf("%s with the session of %s went to %s, want the session's %s", u2, u1, got, want)
				}
			}
			fresh, _, _ := ln.client(t, f, nil)
			if got, want := ln.fetch(t, fresh, url("/"), "X-User", u2), f.owner(valueKey(u2)); got != want {
				t.Errorf("%s without a session went to %s, want %s", u2, got, want)
			}
			if got, want := ln.fetch(t, fresh, url("/"), "X-User", u2, "Cookie", "SERVERID=forged"), f.owner(valueKey(u2)); got != want {
				t.Errorf("%s with a forged session went to %s, want %s", u2, got, want)
			}
			f.checkFastLane(t, ln)
		})
	}
}

// TestHTTPHashMember: when a backend leaves, the values on the others
// stay (a Maglev table moves a few more than the leaver's own, so the
// check is coarse) and the leaver's move.
func TestHTTPHashMember(t *testing.T) {
	leaks(t)
	f := newHashFixture(t, HTTP, true, HTTPOptions{Options: httpproxy.Options{HashBy: HashPolicy{Header: "X-User"}}})
	c, _, url := hashLanes[0].client(t, f, nil)
	before := map[string]string{}
	for i := range 100 {
		u := fmt.Sprintf("user-%d", i)
		before[u] = hashLanes[0].fetch(t, c, url("/"), "X-User", u)
	}
	if spread := slices.Compact(slices.Sorted(maps.Values(before))); len(spread) != 4 {
		t.Fatalf("100 users went to %v, want all four backends", spread)
	}
	if err := f.g.Remove("c"); err != nil {
		t.Fatal(err)
	}
	moved, stayed := 0, 0
	for u, was := range before {
		now := hashLanes[0].fetch(t, c, url("/"), "X-User", u)
		switch {
		case was == "c" && now == "c":
			t.Fatalf("%s still goes to the removed backend", u)
		case was != "c" && now != was:
			moved++
		case was != "c":
			stayed++
		}
	}
	if stayed == 0 || moved > stayed/10 {
		t.Errorf("removing c moved %d of the %d values on other backends, want at most a tenth", moved, moved+stayed)
	}
}

// TestHTTPHashUnset: the hash scheduler without HashBy places requests
// by the source IP, as sch, whatever header they carry.
func TestHTTPHashUnset(t *testing.T) {
	leaks(t)
	for _, ln := range hashLanes {
		t.Run(ln.name, func(t *testing.T) {
			f := newHashFixture(t, ln.proto, ln.fast, HTTPOptions{})
			c, reconnect, url := ln.client(t, f, nil)
			for i := range 8 {
				if got, want := ln.fetch(t, c, url(fmt.Sprintf("/%d?id=%d", i, i)), "X-User", fmt.Sprint(i)), f.owner(loopbackKey); got != want {
					t.Fatalf("request %d went to %s, want %s (the source IP's)", i, got, want)
				}
				reconnect()
			}
		})
	}
}

// TestHTTPHashByRefused: the listener reports httpproxy's refusal as its
// own, the field named as Config names it.
func TestHTTPHashByRefused(t *testing.T) {
	g := newGroup(t, balancer.Maglev{By: balancer.HashKey}, balancer.Backend{ID: "a", Addr: "127.0.0.1:1"})
	_, err := newInstance(t).Add(Config{Protocol: HTTP, Host: "127.0.0.1", Group: g,
		HTTP: HTTPOptions{Options: httpproxy.Options{HashBy: HashPolicy{Cookie: "a", Query: "b"}}}})
	const want = `listener: HTTP.HashBy "cookie a, query b": set one of Header, Cookie, Path and Query`
	if err == nil || err.Error() != want {
		t.Errorf("Add with two hash sources: %v, want %s", err, want)
	}
}
