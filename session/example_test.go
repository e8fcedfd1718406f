package session_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/session"
)

// The HTTP listener's calls in Insert mode: Request on the way in,
// PickSticky on the group, Response on the way out. The Sticky follows the
// group's membership itself.
func Example() {
	g, _ := balancer.New(balancer.Config{Scheduler: balancer.RoundRobin()},
		balancer.Backend{ID: "web-1", Addr: "10.0.0.1:80"},
		balancer.Backend{ID: "web-2", Addr: "10.0.0.2:80"})
	st, err := session.New(session.Config{
		Key:    bytes.Repeat([]byte{7}, 32), // share it between processes
		Groups: []session.Group{g},
	})
	if err != nil {
		panic(err)
	}

	// First request: no cookie.
	req := http.Header{}
	sess := st.Request(req)
	fmt.Printf("session: %q\n", sess.ID)
	p, _ := g.PickSticky(sess.ID, balancer.Key{})
	resp := http.Header{}
	st.Response(resp, sess, p.Member.ID(), true)
	p.Done(balancer.DoneInfo{})
	c, _ := http.ParseSetCookie(resp.Get("Set-Cookie"))
	fmt.Println(c.Name, c.Path, c.MaxAge, c.HttpOnly, c.Secure, c.SameSite == http.SameSiteNoneMode)

	// Next request carries the cookie; the backend does not see it.
	req = http.Header{"Cookie": {"lang=en; " + c.Name + "=" + c.Value}}
	sess = st.Request(req)
	fmt.Printf("session on the picked backend: %v, forwarded Cookie: %q\n", sess.ID == p.Member.ID(), req.Get("Cookie"))
	resp = http.Header{}
	st.Response(resp, sess, sess.ID, true) // the session held: nothing to set
	fmt.Println("Set-Cookie lines:", len(resp["Set-Cookie"]))
	// Output:
	// session: ""
	// SERVERID / 3600 true true true
	// session on the picked backend: true, forwarded Cookie: "lang=en"
	// Set-Cookie lines: 0
}

// Rewrite mode rides on the application's own cookie.
func Example_rewrite() {
	st, err := session.New(session.Config{
		Mode:       session.Rewrite,
		CookieName: "JSESSIONID",
		Key:        bytes.Repeat([]byte{7}, 32),
		Backends:   []string{"app-1", "app-2"},
	})
	if err != nil {
		panic(err)
	}
	// The backend app-1 sets its session cookie; the token is appended.
	resp := http.Header{"Set-Cookie": {"JSESSIONID=s3cr3t; Path=/shop; HttpOnly"}}
	st.Response(resp, session.Session{}, "app-1", false)
	c, _ := http.ParseSetCookie(resp.Get("Set-Cookie"))
	fmt.Println(len(c.Value) == len("s3cr3t~")+session.TokenLen, c.Path, c.HttpOnly)

	// The client sends it back; the application gets exactly "s3cr3t".
	req := http.Header{"Cookie": {"JSESSIONID=" + c.Value}}
	sess := st.Request(req)
	fmt.Printf("session: %q, forwarded Cookie: %q\n", sess.ID, req.Get("Cookie"))
	// Output:
	// true /shop true
	// session: "app-1", forwarded Cookie: "JSESSIONID=s3cr3t"
}

// A Sticky that knows no backends would set a cookie on every response and
// never honour one, so New refuses it.
func ExampleNew_noBackends() {
	_, err := session.New(session.Config{})
	fmt.Println(err)
	// Output: session: Backends nil: required: the backend IDs tokens may name, or Groups to follow
}

func ExampleNew() {
	_, err := session.New(session.Config{CookieTimeout: 1500 * time.Millisecond})
	var ce *session.ConfigError
	fmt.Println(errors.As(err, &ce), ce.Field)
	fmt.Println(err)
	// Output:
	// true CookieTimeout
	// session: CookieTimeout 1.5s: want positive whole seconds
}

func ExampleSticky_EncodeAt() {
	st, _ := session.New(session.Config{Key: bytes.Repeat([]byte{1}, 32), Backends: []string{"10.0.0.7:80"}})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	token := st.EncodeAt("10.0.0.7:80", now)
	fmt.Println(len(token), token)
	fmt.Println(st.DecodeAt(token, now.Add(time.Minute)))
	fmt.Println(st.DecodeAt(token, now.Add(time.Hour))) // CookieTimeout passed
	// Output:
	// 44 AWlXNaWUmHHz-8wX6UWqlBtlWBXJYu5MJJv5Z3j7jgRP
	// 10.0.0.7:80 true
	//  false
}

func ExampleSticky_Encode() {
	st, _ := session.New(session.Config{Backends: []string{"a"}}) // random key
	id, ok := st.Decode(st.Encode("a"))
	fmt.Println(id, ok)
	// Output: a true
}

func ExampleSticky_Decode() {
	st, _ := session.New(session.Config{Backends: []string{"a"}})
	token := st.Encode("a")
	tampered := token[:10] + "x" + token[11:]
	if token[10] == 'x' {
		tampered = token[:10] + "y" + token[11:]
	}
	fmt.Println(st.Decode(tampered))
	fmt.Println(st.Decode("garbage"))
	// Output:
	//  false
	//  false
}

func ExampleSticky_SetKeys() {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	st, _ := session.New(session.Config{Key: oldKey, Backends: []string{"a"}})
	token := st.Encode("a")
	_ = st.SetKeys(newKey, oldKey) // rotate: old tokens still work
	fmt.Println(st.Decode(token))
	_ = st.SetKeys(newKey, nil) // after CookieTimeout, forget the old key
	fmt.Println(st.Decode(token))
	// Output:
	// a true
	//  false
}

func ExampleSticky_SetBackends() {
	st, _ := session.New(session.Config{Backends: []string{"a", "b"}})
	token := st.Encode("b")
	_ = st.SetBackends("a") // b left the group
	fmt.Println(st.Decode(token))
	// Output:  false
}

func ExampleSticky_Lookup() {
	st, _ := session.New(session.Config{Backends: []string{"a", "b"}})
	h := http.Header{"Cookie": {"SERVERID=forged; SERVERID=" + st.Encode("b")}}
	fmt.Println(st.Lookup(h).ID, h.Get("Cookie") != "") // first valid wins; h unchanged
	// Output: b true
}

func ExampleSticky_Request() {
	st, _ := session.New(session.Config{Backends: []string{"a"}})
	h := http.Header{"Cookie": {"x=1; SERVERID=" + st.Encode("a") + "; y=2"}}
	sess := st.Request(h)
	fmt.Println(sess.ID, h.Get("Cookie"))
	// Output: a x=1; y=2
}

func ExampleSticky_Response() {
	st, _ := session.New(session.Config{Backends: []string{"a", "b"}, CookieTimeout: 600 * time.Second})
	h := http.Header{}
	// The cookie named b, but b is unhealthy: PickSticky chose a, so the
	// pick changed and a new cookie is set, whatever the status code.
	st.Response(h, session.Session{ID: "b"}, "a", false)
	c, _ := http.ParseSetCookie(h.Get("Set-Cookie"))
	id, _ := st.Decode(c.Value)
	fmt.Println(id, c.MaxAge, c.SameSite == http.SameSiteLaxMode)
	// Output: a 600 true
}

func ExampleMode_String() {
	fmt.Println(session.Insert, session.Rewrite)
	// Output: insert rewrite
}

// The TCP/UDP listener's calls for source-IP persistence.
func ExampleNewAffinity() {
	aff, err := session.NewAffinity(session.AffinityConfig{PersistenceTimeout: 900 * time.Second})
	if err != nil {
		panic(err)
	}
	src := netip.MustParseAddr("::ffff:198.51.100.7") // unmapped for you
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	id, ok := aff.LookupAt(src, now) // new connection: any binding?
	fmt.Printf("%q %v\n", id, ok)    // no: group.PickSticky("", key)
	aff.SetAt(src, "tcp-2", now)     // bind to the member picked
	id, ok = aff.LookupAt(src, now.Add(time.Minute))
	fmt.Printf("%q %v\n", id, ok)             // group.PickSticky("tcp-2", key)
	aff.TouchAt(src, now.Add(10*time.Minute)) // the connection ended: idle from now
	fmt.Println(aff.LookupAt(src, now.Add(24*time.Minute)))
	fmt.Println(aff.LookupAt(src, now.Add(25*time.Minute)))
	// Output:
	// "" false
	// "tcp-2" true
	// tcp-2 true
	//  false
}

func ExampleAffinity_Lookup() {
	aff, _ := session.NewAffinity(session.AffinityConfig{PersistenceTimeout: time.Minute})
	aff.Set(netip.MustParseAddr("192.0.2.1"), "a")
	fmt.Println(aff.Lookup(netip.MustParseAddr("192.0.2.1")))
	// Output: a true
}

func ExampleAffinity_Set() {
	aff, _ := session.NewAffinity(session.AffinityConfig{PersistenceTimeout: time.Minute})
	ip := netip.MustParseAddr("2001:db8::1")
	aff.Set(ip, "a")
	aff.Set(ip, "b") // rebinding replaces
	fmt.Println(aff.Lookup(ip))
	// Output: b true
}

func ExampleAffinity_Touch() {
	aff, _ := session.NewAffinity(session.AffinityConfig{PersistenceTimeout: time.Minute})
	fmt.Println(aff.Touch(netip.MustParseAddr("192.0.2.1")))
	// Output: false
}

func ExampleAffinity_Delete() {
	aff, _ := session.NewAffinity(session.AffinityConfig{PersistenceTimeout: time.Minute})
	aff.Set(netip.MustParseAddr("192.0.2.1"), "gone")
	aff.Set(netip.MustParseAddr("192.0.2.2"), "gone")
	aff.Set(netip.MustParseAddr("192.0.2.3"), "kept")
	fmt.Println(aff.Delete("gone"), aff.Len())
	// Output: 2 1
}

func ExampleAffinity_SweepAt() {
	aff, _ := session.NewAffinity(session.AffinityConfig{PersistenceTimeout: time.Minute})
	now := time.Now()
	aff.SetAt(netip.MustParseAddr("192.0.2.1"), "a", now)
	aff.SetAt(netip.MustParseAddr("192.0.2.2"), "a", now.Add(30*time.Second))
	fmt.Println(aff.SweepAt(now.Add(time.Minute)), aff.Len())
	// Output: 1 1
}
