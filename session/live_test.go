package session_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/lbkit/lbkit/session"
)

// front is a minimal HTTP listener: it picks a backend as the balancer's
// PickSticky would (the cookie's backend if still a member, else round
// robin), forwards, and applies the session helpers.
type front struct {
	st       *session.Sticky
	mu       sync.Mutex
	backends map[string]string // ID → URL
	order    []string
	next     int
	seen     []string // Cookie header each backend received
}

func newFront(t *testing.T, st *session.Sticky, handler func(id string) http.Handler) (*front, *httptest.Server) {
	t.Helper()
	f := &front{st: st, backends: map[string]string{}}
	for _, id := range []string{"a", "b"} {
		be := httptest.NewServer(handler(id))
		t.Cleanup(be.Close)
		f.backends[id] = be.URL
		f.order = append(f.order, id)
	}
	if err := st.SetBackends(f.order...); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *front) remove(t *testing.T, id string) {
	f.mu.Lock()
	delete(f.backends, id)
	f.order = strings.Fields(strings.ReplaceAll(strings.Join(f.order, " "), id, ""))
	ids := append([]string(nil), f.order...)
	f.mu.Unlock()
	if err := f.st.SetBackends(ids...); err != nil {
		t.Fatal(err)
	}
}

func (f *front) pickSticky(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.backends[id]; ok {
		return id
	}
	id = f.order[f.next%len(f.order)]
	f.next++
	return id
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sess := f.st.Request(r.Header) // 1. read the session, fix the Cookie header
	id := f.pickSticky(sess.ID)    // 2. group.PickSticky(sess.ID, key)
	f.mu.Lock()
	base := f.backends[id]
	f.seen = append(f.seen, r.Header.Get("Cookie"))
	f.mu.Unlock()
	out, _ := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	out.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	f.st.Response(resp.Header, sess, id, r.TLS != nil) // 3. on every status
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (f *front) lastSeen() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[len(f.seen)-1]
}

func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func get(t *testing.T, c *http.Client, u string) (status int, body string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLiveInsert(t *testing.T) {
	st, err := session.New(session.Config{Backends: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	f, srv := newFront(t, st, func(id string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/login":
				http.Redirect(w, r, "/home", http.StatusFound)
				return
			case "/missing":
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, id)
		})
	})
	// A login redirect sets the cookie, so the redirected request sticks.
	c := client(t)
	_, first := get(t, c, srv.URL+"/login")
	for i := range 6 {
		if _, got := get(t, c, srv.URL+"/x"); got != first {
			t.Fatalf("request %d went to %s, want %s (sticky)", i, got, first)
		}
		if seen := f.lastSeen(); strings.Contains(seen, "SERVERID") {
			t.Fatalf("backend saw the balancer cookie: %q", seen)
		}
	}
	// A 404 on a first visit sets the cookie too.
	c2 := client(t)
	status, _ := get(t, c2, srv.URL+"/missing")
	u, _ := url.Parse(srv.URL)
	if status != http.StatusNotFound || len(c2.Jar.Cookies(u)) != 1 {
		t.Fatalf("404: status %d, cookies %v; want the SERVERID cookie", status, c2.Jar.Cookies(u))
	}
	_, second := get(t, c2, srv.URL+"/x")
	for range 4 {
		if _, got := get(t, c2, srv.URL+"/x"); got != second {
			t.Fatalf("after a 404: went to %s, want %s", got, second)
		}
	}
	// The backend leaves: the client moves and sticks to the new one.
	f.remove(t, first)
	_, moved := get(t, c, srv.URL+"/x")
	if moved == first {
		t.Fatalf("still routed to removed backend %s", first)
	}
	for range 4 {
		if _, got := get(t, c, srv.URL+"/x"); got != moved {
			t.Fatalf("after move: went to %s, want %s", got, moved)
		}
	}
}

func TestLiveRewrite(t *testing.T) {
	st, err := session.New(session.Config{Mode: session.Rewrite, CookieName: "APPSESSION", Backends: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"a": `"quoted ~ value"`, "b": "plain~with~separators"}
	f, srv := newFront(t, st, func(id string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/login" {
				// Raw header, so the quotes reach the wire as written.
				w.Header().Add("Set-Cookie", "APPSESSION="+strings.ReplaceAll(values[id], " ", "_")+"; Path=/; HttpOnly")
				w.Header().Add("Set-Cookie", "other=1; Path=/")
			}
			if r.URL.Path == "/logout" {
				w.Header().Add("Set-Cookie", "APPSESSION=; Path=/; Max-Age=0")
			}
			fmt.Fprint(w, id)
		})
	})
	for _, n := range []int{0, 1} {
		c := client(t)
		_, first := get(t, c, srv.URL+"/login")
		want := "APPSESSION=" + strings.ReplaceAll(values[first], " ", "_")
		for i := range 5 {
			if _, got := get(t, c, srv.URL+"/x"); got != first {
				t.Fatalf("client %d request %d went to %s, want %s", n, i, got, first)
			}
			seen := f.lastSeen()
			if !strings.Contains(seen, want) || strings.Count(seen, "~") != strings.Count(want, "~") {
				t.Fatalf("backend saw Cookie %q, want it to hold exactly %q", seen, want)
			}
		}
		// Logout deletes the cookie: the deletion passes unchanged.
		get(t, c, srv.URL+"/logout")
		u, _ := url.Parse(srv.URL)
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == "APPSESSION" {
				t.Errorf("cookie survived logout: %v", ck)
			}
		}
	}
}
