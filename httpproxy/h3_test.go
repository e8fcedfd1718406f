package httpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/syncbuf"
	"github.com/lbkit/lbkit/internal/testpki"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// startH3Server runs p's listener tier over TLS on TCP and QUIC loopback
// sockets with sc; it returns the server, the QUIC port and a client
// TLS config (ALPN h2 and http/1.1; http3.Transport sets h3 itself).
func startH3Server(t *testing.T, p *Proxy, sc ServerConfig) (*Server, int, *tls.Config) {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var ctls *tls.Config
	sc.TLS, ctls = testpki.LoopbackTLS(t, "h2")
	sc.TLS.NextProtos = []string{"h2", "http/1.1"}
	sc.QUIC = pc
	s, _ := retireServer(t, p, sc)
	return s, pc.LocalAddr().(*net.UDPAddr).Port, ctls
}

// laneDo sends one request for target to the HTTPS server at addr over
// TLS with ALPN proto ("http/1.1" or "h2"), with a small body if method
// is POST, on a connection of its own; it returns the response, its
// body read.
func laneDo(t *testing.T, addr string, ctls *tls.Config, proto, method, target string) *http.Response {
	t.Helper()
	c := ctls.Clone()
	c.NextProtos = []string{proto}
	var protos http.Protocols
	protos.SetHTTP1(proto == "http/1.1")
	protos.SetHTTP2(proto == "h2")
	tr := &http.Transport{TLSClientConfig: c, Protocols: &protos}
	defer tr.CloseIdleConnections()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("body")
	}
	req, _ := http.NewRequest(method, "https://"+addr+target, body)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// getLater GETs url with c in a goroutine of its own; the channel
// receives the response's body, or the error's text.
func getLater(c *http.Client, url string) <-chan string {
	got := make(chan string, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	return got
}

// h3Client is an HTTP/3 client trusting tc's roots; it closes with the
// test.
func h3Client(t *testing.T, tc *tls.Config) *http.Client {
	// A short handshake timeout: a client of a stopped server fails
	// soon rather than at quic-go's 5 s.
	tr := &http3.Transport{TLSClientConfig: tc.Clone(), QUICConfig: &quic.Config{HandshakeIdleTimeout: 500 * time.Millisecond}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

func TestHTTP3Serves(t *testing.T) {
	leaks(t)
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+" "+r.Proto)
	})
	var log syncbuf.Buffer
	p, err := New(newGroup(t, nil, b.member()), Options{XForwardedProto: true,
		AccessLog: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, port, tc := startH3Server(t, p, ServerConfig{})
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/"
	resp, err := h3Client(t, tc).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/3.0" || string(body) != "https HTTP/1.1" {
		t.Fatalf("got %s %q, want HTTP/3.0 %q", resp.Proto, body, "https HTTP/1.1")
	}
	if got := resp.Header.Get("Alt-Svc"); got != "" {
		t.Errorf("HTTP/3 response advertises itself: Alt-Svc %q", got)
	}
	if !strings.Contains(log.String(), "proto=HTTP/3.0") {
		t.Errorf("access log %q names no HTTP/3.0", log.String())
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestHTTP3AltSvc(t *testing.T) {
	leaks(t)
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		want   string
	}{
		{"default", 0, "; ma=86400"},
		{"set", time.Hour, "; ma=3600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := retireProxy(t, nil)
			s, port, ctls := startH3Server(t, p, ServerConfig{AltSvcMaxAge: tc.maxAge})
			want := `h3=":` + strconv.Itoa(port) + `"` + tc.want
			for _, lane := range []struct{ proto, method string }{
				{"http/1.1", http.MethodGet},  // the fast lane
				{"http/1.1", http.MethodPost}, // net/http's HTTP/1 lane
				{"h2", http.MethodGet},
			} {
				resp := laneDo(t, s.Addr().String(), ctls, lane.proto, lane.method, "/")
				if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != want {
					t.Errorf("%s %s: Alt-Svc %q, want %q", lane.proto, lane.method, got, want)
				}
				if resp.Proto != map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"}[lane.proto] {
					t.Errorf("%s: answered over %s", lane.proto, resp.Proto)
				}
			}
			fast, handedOff := s.Lanes()
			if fast != 1 || handedOff != 1 {
				t.Errorf("lanes: %d fast, %d handed off; want 1, 1", fast, handedOff)
			}
			// The fast lane's own error responses advertise too: a
			// backend refusing connections is answered 502 there.
			dead, err := New(newGroup(t, nil, balancer.Backend{ID: "dead", Addr: "127.0.0.1:1"}), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer dead.Close()
			ds, dport, _ := startH3Server(t, dead, ServerConfig{AltSvcMaxAge: tc.maxAge})
			c1 := ctls.Clone()
			c1.NextProtos = []string{"http/1.1"}
			c1.RootCAs = nil
			c1.InsecureSkipVerify = true
			c, err := tls.Dial("tcp", ds.Addr().String(), c1)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			want = `h3=":` + strconv.Itoa(dport) + `"` + tc.want
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Alt-Svc") != want {
				t.Errorf("fast-lane error: %d, Alt-Svc %q, want 502, %q", resp.StatusCode, resp.Header.Get("Alt-Svc"), want)
			}
			resp.Body.Close()
		})
	}
}

func TestHTTP3NoAltSvcWithoutQUIC(t *testing.T) {
	leaks(t)
	s, ctls := keepAliveServer(t, true)
	c := ctls.Clone()
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: c}}).Get("https://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Alt-Svc"); got != "" {
		t.Errorf("Alt-Svc %q without QUIC", got)
	}
	s.Shutdown(context.Background())
}

func TestHTTP3NeedsTLS(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := retireProxy(t, nil)
	_, err = p.NewServer(ln, ServerConfig{QUIC: pc}, nil)
	if err == nil || !strings.Contains(err.Error(), "httpproxy: QUIC") || !strings.Contains(err.Error(), "needs TLS") {
		t.Fatalf("got %v, want an error naming QUIC", err)
	}
}

// TestHTTP3GracefulStop: Shutdown lets a request in flight finish
// (GOAWAY first), and afterwards new QUIC connections fail.
func TestHTTP3GracefulStop(t *testing.T) {
	leaks(t)
	entered, release := make(chan struct{}), make(chan struct{})
	p := retireProxy(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	s, port, ctls := startH3Server(t, p, ServerConfig{})
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/"
	got := getLater(h3Client(t, ctls), url)
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	close(release)
	if g := <-got; g != "done" {
		t.Fatalf("in-flight request: %q, want done", g)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if resp, err := h3Client(t, ctls).Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a new QUIC connection was served after Shutdown")
	}
}

// TestHTTP3BackendAltSvc: a backend's own Alt-Svc names its own port,
// which clients cannot reach through the proxy: a server advertising
// HTTP/3 drops it, in every lane — its advertisement stands alone on
// HTTP/1.1 and HTTP/2, and HTTP/3 responses carry none. Without HTTP/3
// the backend's field passes unchanged.
func TestHTTP3BackendAltSvc(t *testing.T) {
	leaks(t)
	const backendAlt = `h3=":9443"; ma=60`
	p := retireProxy(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", backendAlt)
		io.WriteString(w, "b")
		if r.URL.Query().Has("chunked") {
			w.(http.Flusher).Flush() // no Content-Length: the fast lane's generic path
		}
	})
	type lane struct{ proto, method, query string }
	lanes := []lane{
		{"http/1.1", http.MethodGet, ""},         // the fast lane
		{"http/1.1", http.MethodGet, "?chunked"}, // its generic path
		{"http/1.1", http.MethodPost, ""},        // net/http's HTTP/1 lane
		{"h2", http.MethodGet, ""},
	}
	do := func(t *testing.T, addr string, ctls *tls.Config, l lane) *http.Response {
		t.Helper()
		return laneDo(t, addr, ctls, l.proto, l.method, "/"+l.query)
	}
	t.Run("HTTP/3 on", func(t *testing.T) {
		s, port, ctls := startH3Server(t, p, ServerConfig{})
		want := `h3=":` + strconv.Itoa(port) + `"; ma=86400`
		for _, l := range lanes {
			if got := do(t, s.Addr().String(), ctls, l).Header.Values("Alt-Svc"); len(got) != 1 || got[0] != want {
				t.Errorf("%s %s%s: Alt-Svc %q, want ours alone, %q", l.proto, l.method, l.query, got, want)
			}
		}
		if fast, handedOff := s.Lanes(); fast != 2 || handedOff != 1 {
			t.Errorf("lanes: %d fast, %d handed off; want 2, 1", fast, handedOff)
		}
		resp, err := h3Client(t, ctls).Get("https://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values("Alt-Svc"); len(got) != 0 {
			t.Errorf("HTTP/3: Alt-Svc %q, want none", got)
		}
	})
	t.Run("HTTP/3 off", func(t *testing.T) {
		sc := ServerConfig{}
		var ctls *tls.Config
		sc.TLS, ctls = testpki.LoopbackTLS(t, "h2")
		sc.TLS.NextProtos = []string{"h2", "http/1.1"}
		s, _ := retireServer(t, p, sc)
		for _, l := range lanes {
			if got := do(t, s.Addr().String(), ctls, l).Header.Values("Alt-Svc"); len(got) != 1 || got[0] != backendAlt {
				t.Errorf("%s %s%s: Alt-Svc %q, want the backend's, %q", l.proto, l.method, l.query, got, backendAlt)
			}
		}
		if fast, handedOff := s.Lanes(); fast != 2 || handedOff != 1 {
			t.Errorf("lanes: %d fast, %d handed off; want 2, 1", fast, handedOff)
		}
	})
}

// TestFastLaneDropsAltSvc: the fast lane's response parser leaves a
// backend's Alt-Svc out of the lines it keeps when asked, and keeps it
// otherwise, allocating nothing either way.
func TestFastLaneDropsAltSvc(t *testing.T) {
	head := []byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nALT-SVC: h3=\":9443\"\r\nX-A: b\r\n\r\nb")
	for _, drop := range []bool{false, true} {
		var p h1Response
		if parseResponse(head, &p, nil, drop) != h1Complete {
			t.Fatalf("drop %v: head not parsed", drop)
		}
		kept := 0
		for _, ln := range p.keep[:p.nkeep] {
			if strings.HasPrefix(string(head[ln.start:ln.end]), "ALT-SVC:") {
				kept++
			}
		}
		if want := map[bool]int{false: 1, true: 0}[drop]; kept != want {
			t.Errorf("drop %v: Alt-Svc kept %d times, want %d", drop, kept, want)
		}
		if n := testing.AllocsPerRun(100, func() { parseResponse(head, &p, nil, drop) }); n != 0 {
			t.Errorf("drop %v: %v allocations, want 0", drop, n)
		}
	}
}
