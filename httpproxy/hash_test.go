package httpproxy

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/lbkit/lbkit/balancer"
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
		{"two", HashPolicy{Header: "X-User", Path: true}, `httpproxy: HashBy "header X-User, path": set one of Header, Cookie, Path and Query`},
		{"bad header", HashPolicy{Header: "X User"}, `httpproxy: HashBy.Header "X User": not a header field name`},
		{"bad cookie", HashPolicy{Cookie: "a=b"}, `httpproxy: HashBy.Cookie "a=b": not a cookie name`},
		{"bad query", HashPolicy{Query: "a&b"}, `httpproxy: HashBy.Query "a&b": want letters, digits and "-._~"`},
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
	// New refuses it too.
	g := newGroup(t, balancer.Maglev{By: balancer.HashKey}, balancer.Backend{ID: "a", Addr: "127.0.0.1:1"})
	_, err := New(g, Options{HashBy: HashPolicy{Cookie: "a", Query: "b"}})
	if err == nil || !strings.Contains(err.Error(), "httpproxy: HashBy") {
		t.Errorf("New with two hash sources: %v, want an HashBy error", err)
	}
}

// hashViews parses a raw request head both ways the lanes do and returns
// the two renderings; ok is false if the fast lane would decline it.
func hashViews(t testing.TB, head string) (fast, std hashRequest, ok bool) {
	q := new(h1Request)
	if parseRequest([]byte(head), &h1Options{maxHead: 64 << 10, maxURI: 8 << 10, plan: &testPlan}, q) != h1Complete {
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
