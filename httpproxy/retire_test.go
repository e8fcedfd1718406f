package httpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/getloop"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/internal/testpki"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// retireServer runs p's listener tier with sc on a loopback socket and
// returns it with its listener, which a test may dup for a successor.
// The server shuts down with the test if the test has not retired it.
func retireServer(t *testing.T, p *Proxy, sc ServerConfig) (*Server, net.Listener) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.NewServer(ln, sc, nil)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, ln
}

// retireProxy returns a proxy to one backend, b, answering with h (nil:
// its name); the proxy closes with the test.
func retireProxy(t *testing.T, h http.HandlerFunc) *Proxy {
	t.Helper()
	b := startBackend(t, "b", h)
	p, err := New(newGroup(t, nil, b.member()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// keepAliveServer runs a server of HTTP/1.1 (over TLS if overTLS, a client
// config for it returned) whose connections idle a minute, to one
// backend answering "b".
func keepAliveServer(t *testing.T, overTLS bool) (*Server, *tls.Config) {
	t.Helper()
	sc := ServerConfig{IdleTimeout: time.Minute}
	var clientTLS *tls.Config
	if overTLS {
		sc.TLS, clientTLS = testpki.LoopbackTLS(t, "http/1.1")
	}
	s, _ := retireServer(t, retireProxy(t, nil), sc)
	return s, clientTLS
}

// connect dials s, over TLS with config tc unless it is nil; the
// connection closes with the test and fails a read that would hang it.
func connect(t *testing.T, s *Server, tc *tls.Config) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err == nil && tc != nil {
		tc := tls.Client(c, tc)
		c, err = tc, tc.Handshake()
	}
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// dupListener returns a listener on a dup of ln's socket: a successor's,
// which keeps the socket open when ln closes.
func dupListener(t *testing.T, ln net.Listener) net.Listener {
	t.Helper()
	f, err := netx.File(ln.(*net.TCPListener), ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln2, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return ln2
}

// successor serves ln with p until the test ends: the server that takes
// over a retired one's socket.
func successor(t *testing.T, p *Proxy, ln net.Listener, sc ServerConfig) *Server {
	t.Helper()
	s, err := p.NewServer(ln, sc, nil)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// startRetire calls Retire(ctx) on s and returns its result's channel
// once s has stopped accepting and is retiring its connections.
func startRetire(t *testing.T, ctx context.Context, s *Server) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Retire(ctx) }()
	waitFor(t, "the server to retire", s.s.front.draining.Load)
	return errc
}

// waitFor waits until cond holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// exchange sends req on c and reads the response, body included.
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write %q: %v", req, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response to %q: %v", req, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body of the response to %q: %v", req, err)
	}
	return resp, string(body)
}

// TestRetireKeepAlive: a keep-alive connection idle when Retire starts,
// in the fast lane (GET, waiting on its goroutine or parked in the
// poller) or handed to net/http (POST), over HTTP and HTTPS, is not
// closed: its next request is answered with "Connection: close", the
// connection closes after it, and Retire returns then, before its
// deadline.
func TestRetireKeepAlive(t *testing.T) {
	const (
		get  = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
		post = "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nping"
	)
	for _, tc := range []struct {
		name   string
		tls    bool
		req    string
		parked bool // wait until the idle connection is parked
		lane   string
	}{
		{name: "http/get", req: get, lane: "fast"},
		{name: "http/get-parked", req: get, parked: true, lane: "fast"},
		{name: "http/post", req: post, lane: "net/http"},
		{name: "https/get", tls: true, req: get, lane: "fast"},
		{name: "https/post", tls: true, req: post, lane: "net/http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks(t)
			s, clientTLS := keepAliveServer(t, tc.tls)
			c := connect(t, s, clientTLS)
			br := bufio.NewReader(c)
			if resp, body := exchange(t, c, br, tc.req); resp.StatusCode != 200 || resp.Close || body != "b" {
				t.Fatalf("first response: %s close=%v %q, want 200 OK, keep-alive, \"b\"", resp.Status, resp.Close, body)
			}
			if tc.parked {
				waitFor(t, "the connection to park", func() bool { return s.Parked() == 1 })
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			retired := startRetire(t, ctx, s)

			resp, body := exchange(t, c, br, tc.req)
			if resp.StatusCode != 200 || !resp.Close || body != "b" {
				t.Errorf("response after Retire: %s close=%v %q, want 200 OK with Connection: close, \"b\"", resp.Status, resp.Close, body)
			}
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("read after the last response = %d, %v; want the connection closed (EOF)", n, err)
			}
			if err := <-retired; err != nil {
				t.Errorf("Retire = %v, want nil: the connection retired before the deadline", err)
			}
			fast, handedOff := s.Lanes()
			if lane := map[bool]string{true: "fast", false: "net/http"}[handedOff == 0]; lane != tc.lane || fast+handedOff == 0 {
				t.Errorf("Lanes() = %d, %d: served by %s, want %s", fast, handedOff, lane, tc.lane)
			}
		})
	}
}

// TestRetireHTTP2: Retire sends an HTTP/2 connection a GOAWAY at once,
// while a request is in flight on it and an HTTP/1.1 connection idles
// beside it; that request finishes, the
// connection closes, and the client's next request goes on a new
// connection, served by a successor on a dup of the socket.
func TestRetireHTTP2(t *testing.T) {
	leaks(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	p := retireProxy(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "b")
	})
	serverTLS, clientTLS := testpki.LoopbackTLS(t, "h2")
	serverTLS.NextProtos = []string{"h2", "http/1.1"}
	s, ln := retireServer(t, p, ServerConfig{TLS: serverTLS, IdleTimeout: time.Minute})

	// An HTTP/1.1 keep-alive connection idle beside it must not hold
	// the GOAWAY back.
	h1TLS := clientTLS.Clone()
	h1TLS.NextProtos = []string{"http/1.1"}
	c1 := connect(t, s, h1TLS)
	br1 := bufio.NewReader(c1)
	const get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
	exchange(t, c1, br1, get)

	c := connect(t, s, clientTLS)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/slow"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(hb.String()), EndStream: true, EndHeaders: true})
	<-arrived

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The successor shares the socket before this server closes its
	// descriptor, as a process taking over would.
	ln2 := dupListener(t, ln)
	retired := startRetire(t, ctx, s)
	successor(t, p, ln2, ServerConfig{TLS: serverTLS})

	// Frames until the GOAWAY, which comes with the request in flight.
	var status string
	gotGoAway, ended := false, false
	for !ended {
		fm, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v (GOAWAY seen: %v, stream 1 ended: %v)", err, gotGoAway, ended)
		}
		switch fm := fm.(type) {
		case *http2.SettingsFrame:
			if !fm.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			if fm.ErrCode != http2.ErrCodeNo || fm.LastStreamID < 1 {
				t.Errorf("GOAWAY %v last stream %d, want NO_ERROR, last stream ≥ 1", fm.ErrCode, fm.LastStreamID)
			}
			if !gotGoAway {
				gotGoAway = true
				close(release) // only now may the request finish
			}
		case *http2.MetaHeadersFrame:
			status = fm.PseudoValue("status")
			ended = fm.StreamEnded()
		case *http2.DataFrame:
			ended = fm.StreamEnded()
		}
	}
	if status != "200" {
		t.Errorf("stream 1: status %q, want 200: the request in flight finishes", status)
	}
	if resp, _ := exchange(t, c1, br1, get); !resp.Close {
		t.Errorf("HTTP/1.1 response after Retire: keep-alive, want Connection: close")
	}
	for {
		if _, err := fr.ReadFrame(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("after the last stream: %v, want the connection closed (EOF)", err)
			}
			break
		}
	}
	if err := <-retired; err != nil {
		t.Errorf("Retire = %v, want nil", err)
	}

	tr := &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatalf("GET after Retire: %v, want it served by the successor", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("GET after Retire: %s %s, want 200 over HTTP/2", resp.Proto, resp.Status)
	}
}

// TestRetireIdleTimeout: a keep-alive connection that sends nothing
// after Retire closes at its IdleTimeout, and Retire returns then.
func TestRetireIdleTimeout(t *testing.T) {
	for _, tc := range []struct{ name, req string }{
		{"fast", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
		{"net/http", "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaks(t)
			p := retireProxy(t, nil)
			s, _ := retireServer(t, p, ServerConfig{IdleTimeout: 50 * time.Millisecond})
			c := dial(t, s)
			br := bufio.NewReader(c)
			if resp, _ := exchange(t, c, br, tc.req); resp.Close {
				t.Fatalf("first response: Connection: close, want keep-alive")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			retired := startRetire(t, ctx, s)
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("read on the idle connection = %d, %v; want it closed at its idle timeout (EOF)", n, err)
			}
			if err := <-retired; err != nil {
				t.Errorf("Retire = %v, want nil: the idle connection closed at its idle timeout", err)
			}
		})
	}
}

// TestRetireFreshGrace: a connection that has carried no request when
// Retire starts is closed after the fresh grace, as with Shutdown; a
// keep-alive connection idle beside it is not: its next request is
// answered.
func TestRetireFreshGrace(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			leaks(t)
			s, clientTLS := keepAliveServer(t, tc.tls)
			s.s.front.freshGrace = time.Millisecond
			const get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
			kept := connect(t, s, clientTLS)
			br := bufio.NewReader(kept)
			exchange(t, kept, br, get)
			fresh := connect(t, s, clientTLS)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			retired := startRetire(t, ctx, s)
			if n, err := fresh.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("read on the fresh connection = %d, %v; want it closed after the grace (EOF)", n, err)
			}
			if resp, body := exchange(t, kept, br, get); resp.StatusCode != 200 || !resp.Close || body != "b" {
				t.Errorf("keep-alive connection after the grace: %s close=%v %q, want 200 OK with Connection: close", resp.Status, resp.Close, body)
			}
			if err := <-retired; err != nil {
				t.Errorf("Retire = %v, want nil", err)
			}
		})
	}
}

// TestRetireDeadline: when Retire's ctx is done, the connections still
// open are cut, in both lanes, and Retire returns ctx's error.
func TestRetireDeadline(t *testing.T) {
	leaks(t)
	p := retireProxy(t, nil)
	s, _ := retireServer(t, p, ServerConfig{IdleTimeout: time.Minute})
	var conns []net.Conn
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nping",
	} {
		c := dial(t, s)
		exchange(t, c, bufio.NewReader(c), req)
		conns = append(conns, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	retired := startRetire(t, ctx, s)
	cancel()
	if err := <-retired; !errors.Is(err, context.Canceled) {
		t.Errorf("Retire = %v, want context.Canceled", err)
	}
	for i, c := range conns {
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read on idle connection %d after the deadline = %d, %v; want EOF", i, n, err)
		}
	}
}

// TestRetireUnderLoad: clients POST in loops over keep-alive while the
// server is retired and a successor on a dup of its socket takes over,
// ten times: no request fails. (With Shutdown instead of Retire, some
// do: a POST sent on a keep-alive connection as it closes is not
// replayed.)
func TestRetireUnderLoad(t *testing.T) {
	leaks(t)
	p := retireProxy(t, nil)
	s, ln := retireServer(t, p, ServerConfig{})
	url := "http://" + s.Addr().String() + "/"
	var loops []*getloop.Loop
	for range 4 {
		loops = append(loops, getloop.StartPOST(url))
	}
	served := func(min int64) func() bool {
		return func() bool {
			for _, l := range loops {
				if l.Served.Load() < min {
					return false
				}
			}
			return true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 10 {
		waitFor(t, "every client served", served(int64(10*(i+1))))
		next := successor(t, p, dupListener(t, ln), ServerConfig{})
		if err := retireOrShutdown(s, ctx); err != nil {
			t.Errorf("Retire (handover %d) = %v, want nil", i, err)
		}
		s, ln = next, next.s.ln
	}
	waitFor(t, "the last successor to serve", served(120))
	for i, l := range loops {
		l.Stop()
		if n := l.Failed.Load() + l.Refused.Load(); n > 0 {
			t.Errorf("client %d, during 10 handovers: %d of %d requests failed, last: %v", i, n, n+l.Served.Load(), l.LastErr.Load())
		}
	}
	if fast, handedOff := s.Lanes(); handedOff == 0 {
		t.Errorf("last successor Lanes() = %d, %d: it served no POST", fast, handedOff)
	}
}

// retireOrShutdown is Retire, or Shutdown with RETIRE_TEST_SHUTDOWN=1 in
// the environment: the way to see TestRetireUnderLoad fail without
// Retire.
func retireOrShutdown(s *Server, ctx context.Context) error {
	if os.Getenv("RETIRE_TEST_SHUTDOWN") == "1" {
		return s.Shutdown(ctx)
	}
	return s.Retire(ctx)
}
