package listener

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/session"
)

func TestHashPolicyCompile(t *testing.T) {
	tests := []struct {
		name string
		p    HashPolicy
		err  string // "" = accepted
	}{
		{"zero", HashPolicy{}, ""},
		{"header", HashPolicy{Header: "X-User"}, ""},
		{"cookie", HashPolicy{Cookie: "uid"}, ""},
		{"path", HashPolicy{Path: true}, ""},
		{"query", HashPolicy{Query: "user_id"}, ""},
		{"two", HashPolicy{Header: "X-User", Path: true}, `listener: HTTP.HashBy "header X-User, path": set one of Header, Cookie, Path and Query`},
		{"bad header", HashPolicy{Header: "X User"}, `listener: HTTP.HashBy.Header "X User": not a header field name`},
		{"bad cookie", HashPolicy{Cookie: "a=b"}, `listener: HTTP.HashBy.Cookie "a=b": not a cookie name`},
		{"bad query", HashPolicy{Query: "a&b"}, `listener: HTTP.HashBy.Query "a&b": want letters, digits and "-._~"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.compile()
			if got := fmt.Sprint(err); tt.err == "" && err != nil || tt.err != "" && got != tt.err {
				t.Errorf("compile(%+v) = %v, want %q", tt.p, err, tt.err)
			}
			var ce *ConfigError
			if tt.err != "" && !errors.As(err, &ce) {
				t.Errorf("compile(%+v): %T is not a *ConfigError", tt.p, err)
			}
		})
	}
	// The listener refuses it too.
	g := newGroup(t, balancer.Maglev{By: balancer.HashKey}, balancer.Backend{ID: "a", Addr: "127.0.0.1:1"})
	_, err := newInstance(t).Add(Config{Protocol: HTTP, Host: "127.0.0.1", Group: g, HTTP: HTTPOptions{HashBy: HashPolicy{Cookie: "a", Query: "b"}}})
	if err == nil || !strings.Contains(err.Error(), "HTTP.HashBy") {
		t.Errorf("Add with two hash sources: %v, want an HTTP.HashBy error", err)
	}
}

// hashViews parses a raw request head both ways the lanes do and returns
// the two renderings; ok is false if the fast lane would decline it.
func hashViews(t testing.TB, head string) (fast, std hashRequest, ok bool) {
	q := new(h1Request)
	if parseRequest([]byte(head), &h1Options{maxHead: 64 << 10, maxURI: 8 << 10}, q) != h1Complete {
		return nil, nil, false
	}
	q.raw = []byte(head)[:q.len]
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		t.Fatalf("net/http refuses a head the fast lane took: %v\n%q", err, head)
	}
	return (*h1View)(q), (*stdRequest)(r), true
}

// TestHashValue checks the rule on both renderings of each request: the
// value each policy takes, and that the lanes agree on it.
func TestHashValue(t *testing.T) {
	const (
		line = "GET /a/b?id=7&x=&y&id=8&enc=a%20b HTTP/1.1\r\nHost: Example.com:8080\r\n"
		ck   = "Cookie: a=1; uid=\"u 1\"; uid=u2\r\nCookie: c=3\r\n"
	)
	tests := []struct {
		name string
		p    HashPolicy
		head string
		want string // "" = no value: the source IP decides
	}{
		{"header", HashPolicy{Header: "x-user"}, line + "X-User:  alice \r\n\r\n", "alice"},
		{"header first of two", HashPolicy{Header: "X-User"}, line + "X-User: alice\r\nx-user: bob\r\n\r\n", "alice"},
		{"header whole value", HashPolicy{Header: "X-User"}, line + "X-User: a, b\r\n\r\n", "a, b"},
		{"header absent", HashPolicy{Header: "X-User"}, line + "X-Other: alice\r\n\r\n", ""},
		{"header empty", HashPolicy{Header: "X-User"}, line + "X-User:\r\n\r\n", ""},
		{"host", HashPolicy{Header: "Host"}, line + "\r\n", "Example.com:8080"},
		{"header cookie", HashPolicy{Header: "Cookie"}, line + ck + "\r\n", `a=1; uid="u 1"; uid=u2`},
		{"cookie", HashPolicy{Cookie: "uid"}, line + ck + "\r\n", "u 1"},
		{"cookie second field", HashPolicy{Cookie: "c"}, line + ck + "\r\n", "3"},
		{"cookie case matters", HashPolicy{Cookie: "UID"}, line + ck + "\r\n", ""},
		{"cookie absent", HashPolicy{Cookie: "uid"}, line + "\r\n", ""},
		{"cookie prefix only", HashPolicy{Cookie: "ui"}, line + ck + "\r\n", ""},
		{"path", HashPolicy{Path: true}, line + "\r\n", "/a/b"},
		{"query first", HashPolicy{Query: "id"}, line + "\r\n", "7"},
		{"query as sent", HashPolicy{Query: "enc"}, line + "\r\n", "a%20b"},
		{"query empty", HashPolicy{Query: "x"}, line + "\r\n", ""},
		{"query no value", HashPolicy{Query: "y"}, line + "\r\n", ""},
		{"query absent", HashPolicy{Query: "z"}, line + "\r\n", ""},
		{"query none", HashPolicy{Query: "id"}, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.p.compile()
			if err != nil {
				t.Fatal(err)
			}
			fast, std, ok := hashViews(t, tt.head)
			if !ok {
				t.Fatalf("the fast lane declines %q", tt.head)
			}
			for lane, r := range map[string]hashRequest{"fast": fast, "net/http": std} {
				if got := p.value(r); got != tt.want {
					t.Errorf("%s lane: value = %q, want %q", lane, got, tt.want)
				}
				src := netip.MustParseAddrPort("192.0.2.1:5000")
				k := p.key(src, src, r)
				if k.HasHash != (tt.want != "") || k.HasHash && k.Hash != xxhash.Sum64String(tt.want) {
					t.Errorf("%s lane: key = %+v, want the xxhash of %q", lane, k, tt.want)
				}
			}
		})
	}
}

// FuzzHashLanes checks that for every head the fast lane takes, both
// renderings give every policy the same value.
func FuzzHashLanes(f *testing.F) {
	f.Add("GET /a?id=1&id=2 HTTP/1.1\r\nHost: h\r\nX-User: u\r\nCookie: uid=1; a=2\r\n\r\n")
	f.Add("GET /%20?id=%41 HTTP/1.1\r\nHost: h\r\nx-user: \"u\"\r\nX-User: v\r\n\r\n")
	f.Add("HEAD /p HTTP/1.1\r\nhost: h:1\r\nCookie: uid=\"q\"\r\ncookie: uid=r\r\n\r\n")
	var policies []*hashPolicy
	for _, p := range []HashPolicy{{Header: "X-User"}, {Header: "Host"}, {Cookie: "uid"}, {Path: true}, {Query: "id"}} {
		c, err := p.compile()
		if err != nil {
			f.Fatal(err)
		}
		policies = append(policies, c)
	}
	f.Fuzz(func(t *testing.T, head string) {
		fast, std, ok := hashViews(t, head)
		if !ok {
			return
		}
		for _, p := range policies {
			if a, b := p.value(fast), p.value(std); a != b {
				t.Errorf("policy %+v: fast lane %q, net/http %q\n%q", *p, a, b, head)
			}
		}
	})
}

func TestHashKeyAllocs(t *testing.T) {
	p, err := HashPolicy{Cookie: "uid"}.compile()
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _ := hashViews(t, "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2; uid=3\r\n\r\n")
	src := netip.MustParseAddrPort("192.0.2.1:5000")
	if n := testing.AllocsPerRun(100, func() { p.key(src, src, fast) }); n != 0 {
		t.Errorf("key allocates %v times on the fast lane, want 0", n)
	}
}

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
		f.ca = newCA(t, "ca")
		opts.Certificate = f.ca.issue(t, "default", "default.test")
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
	h2    bool
}

var hashLanes = []hashLane{
	{"fast lane", HTTP, true, false},
	{"net/http", HTTP, false, false},
	{"HTTP/2", HTTPS, true, true},
}

// client returns a client of the lane, its transport's CloseIdleConnections
// to start new connections, and the URL of path.
func (ln hashLane) client(t *testing.T, f *hashFixture, jar http.CookieJar) (*http.Client, func(), func(path string) string) {
	if ln.proto == HTTPS {
		c := httpsClient(t, f.ca, nil, ln.h2)
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
	if want := map[bool]int{true: 2, false: 1}[ln.h2]; resp.ProtoMajor != want || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d over %s, want 200 over HTTP/%d", url, resp.StatusCode, resp.Proto, want)
	}
	return resp.Header.Get("X-Backend")
}

func (f *hashFixture) checkFastLane(t *testing.T, ln hashLane) {
	t.Helper()
	served := f.l.srv.(*httpServer).front.served.Load()
	if ln.fast && !ln.h2 && served == 0 || !ln.fast && served != 0 {
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
			f := newHashFixture(t, ln.proto, ln.fast, HTTPOptions{HashBy: HashPolicy{Header: "X-User"}})
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
// decides the backend in both HTTP/1.1 lanes.
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
		for _, ln := range hashLanes[:2] {
			t.Run(tt.name+"/"+ln.name, func(t *testing.T) {
				f := newHashFixture(t, ln.proto, ln.fast, HTTPOptions{HashBy: tt.p})
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
				HashBy:        HashPolicy{Header: "X-User"},
				StickySession: &session.Config{},
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
	f := newHashFixture(t, HTTP, true, HTTPOptions{HashBy: HashPolicy{Header: "X-User"}})
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
	for _, ln := range hashLanes[:2] {
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
