package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testpki"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
)

// startH3Host is startH3Server with a host whose counters the test
// reads; it returns the QUIC address. tune, if not nil, edits the
// server's TLS config first.
func startH3Host(t *testing.T, p *Proxy, sc ServerConfig, tune func(*tls.Config)) (*Server, *recordingHost, string, *tls.Config) {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ctls *tls.Config
	sc.TLS, ctls = testpki.LoopbackTLS(t, "h2")
	if tune != nil {
		tune(sc.TLS)
	}
	sc.QUIC = pc
	h := &recordingHost{nopHost: nopHost{log: slog.New(slog.DiscardHandler)}}
	s, err := p.NewServer(ln, sc, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, h, pc.LocalAddr().String(), ctls
}

// TestHTTP3GoAwayAtLimit: a connection that reaches
// HTTP2MaxRequestsPerConnection is sent a GOAWAY while its last request
// is in the handler, so a client sending one request after another
// opens its next connection without a single stream rejected (without
// the GOAWAY, every connection but the last rejects one: the client
// learns of the limit only from the reset). Concurrent clients lose no
// processed request: the streams accepted before a GOAWAY are served;
// one that raced it is reset with H3_REQUEST_REJECTED, unprocessed,
// which quic-go's client retries once, on a new connection; with a
// limit of 3 and bursts of 12, a retry can race that connection's
// GOAWAY too and fail, still unprocessed (the backend never saw it).
func TestHTTP3GoAwayAtLimit(t *testing.T) {
	leaks(t)
	const limit, n = 3, 12
	b := startBackend(t, "b", nil)
	p, err := New(newGroup(t, nil, b.member()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, h, addr, ctls := startH3Host(t, p, ServerConfig{HTTP2MaxRequestsPerConnection: limit}, nil)
	url := "https://" + addr + "/"
	get := func(c *http.Client) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "b" {
			return errors.New("body " + strconv.Quote(string(body)))
		}
		return nil
	}
	c := h3Client(t, ctls)
	for i := range n {
		if err := get(c); err != nil {
			t.Fatalf("sequential request %d: %v", i, err)
		}
	}
	conns, rejected := h.m.New.Load(), h.m.HTTP3Requests.Load()-uint64(b.hits.Load())
	t.Logf("sequential: %d requests, %d QUIC connections, %d streams rejected", n, conns, rejected)
	if conns != n/limit || rejected != 0 {
		t.Errorf("sequential: %d connections, %d streams rejected; want %d, 0", conns, rejected, n/limit)
	}

	// Concurrent: several clients, each with its requests in parallel.
	const clients = 4
	errs := make(chan error, clients*n)
	var wg sync.WaitGroup
	for range clients {
		c := h3Client(t, ctls)
		for range n {
			wg.Go(func() { errs <- get(c) })
		}
	}
	hitsBefore := b.hits.Load()
	wg.Wait()
	close(errs)
	failed, unprocessed := 0, 0
	for err := range errs {
		var h3err *http3.Error
		switch {
		case err == nil:
		case errors.As(err, &h3err) && h3err.ErrorCode == http3.ErrCodeRequestRejected:
			unprocessed++
		default:
			failed++
			t.Log(err)
		}
	}
	served := b.hits.Load() - hitsBefore
	conns, rejected = h.m.New.Load()-conns, h.m.HTTP3Requests.Load()-uint64(b.hits.Load())-rejected
	t.Logf("concurrent: %d clients × %d requests, %d failed, %d rejected twice (unprocessed), %d QUIC connections, %d streams rejected", clients, n, failed, unprocessed, conns, rejected)
	if failed != 0 || int(served) != clients*n-unprocessed {
		t.Errorf("concurrent: %d of %d requests failed other than unprocessed, %d reached the backend; want 0 and %d", failed, clients*n, served, clients*n-unprocessed)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestHTTP3IdleHeadless: a QUIC connection whose only stream never
// sends its request head is idle: it is closed with H3_NO_ERROR after
// IdleTimeout, though the client's PINGs keep QUIC alive and http3's
// own timer would wait for the stream. A connection with a request in
// the handler all that time is not closed: its request is answered.
func TestHTTP3IdleHeadless(t *testing.T) {
	leaks(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := retireProxy(t, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-release
		io.WriteString(w, "slow")
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // on failure too: the backend's cleanup waits for it
	const idle = 300 * time.Millisecond
	_, h, addr, ctls := startH3Host(t, p, ServerConfig{IdleTimeout: idle}, nil)
	slow := getLater(h3Client(t, ctls), "https://"+addr+"/")
	<-entered
	t0 := time.Now()

	qtls := ctls.Clone()
	qtls.NextProtos = []string{http3.NextProtoH3}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, addr, qtls, &quic.Config{KeepAlivePeriod: idle / 6, MaxIdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	str, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first byte of a HEADERS frame, so that the server accepts the
	// stream (an opened stream is sent nothing until written) and waits
	// for the rest of its head.
	if _, err := str.Write([]byte{0x01}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-qc.Context().Done():
	case <-ctx.Done():
		t.Fatal("a connection with a head-less stream was still open 10 s later")
	}
	if ae, ok := errors.AsType[*quic.ApplicationError](context.Cause(qc.Context())); !ok ||
		!ae.Remote || ae.ErrorCode != quic.ApplicationErrorCode(http3.ErrCodeNoError) {
		t.Errorf("closed with %v, want the server's H3_NO_ERROR", context.Cause(qc.Context()))
	}
	t.Logf("head-less connection closed after %v: %v", time.Since(t0), context.Cause(qc.Context()))
	// More than IdleTimeout has passed since the slow request entered
	// the handler (the head-less connection opened after it).
	releaseOnce()
	if got := <-slow; got != "slow" {
		t.Errorf("the request in the handler through IdleTimeout: %q, want slow", got)
	}
	if n := h.m.New.Load(); n != 2 {
		t.Errorf("%d QUIC connections, want 2: the slow request's was closed under it", n)
	}
}

// TestHTTP3IdleAllocs: marking a request in and out of the handler,
// which restarts the idle timer, allocates nothing.
func TestHTTP3IdleAllocs(t *testing.T) {
	c := &h3Conn{}
	c.timeout.Store(int64(time.Hour))
	c.idle = time.AfterFunc(time.Hour, func() {})
	defer c.idle.Stop()
	if n := testing.AllocsPerRun(1000, func() {
		c.begin()
		c.end()
	}); n != 0 {
		t.Errorf("begin and end: %v allocations, want 0", n)
	}
}

// TestHTTP3StopClosesIdle: Shutdown closes at once an HTTP/3
// connection with no request in the handler, though its IdleTimeout is
// a minute away, and returns with every connection and goroutine
// ended. Retire does not close it: it sends a GOAWAY and waits for the
// client to close the connection (a request the client sent at that
// moment would fail on a closed one), then returns. The client is a
// bare QUIC connection, which, unlike quic-go's HTTP/3 client, does not
// close by itself at the GOAWAY.
func TestHTTP3StopClosesIdle(t *testing.T) {
	for _, retire := range []bool{false, true} {
		t.Run(map[bool]string{false: "shutdown", true: "retire"}[retire], func(t *testing.T) {
			leaks(t)
			p := retireProxy(t, nil)
			s, h, addr, ctls := startH3Host(t, p, ServerConfig{IdleTimeout: time.Minute}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			qtls := ctls.Clone()
			qtls.NextProtos = []string{http3.NextProtoH3}
			qc, err := quic.DialAddr(ctx, addr, qtls, &quic.Config{KeepAlivePeriod: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer qc.CloseWithError(0, "")
			// The server has accepted it once it opened its control stream.
			ctrl, err := qc.AcceptUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !retire {
				if err := s.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v, want the idle connection closed at once", err)
				}
				<-qc.Context().Done()
			} else {
				stopped := make(chan error, 1)
				go func() { stopped <- s.Retire(ctx) }()
				if err := readGoAway(ctrl); err != nil {
					t.Fatalf("no GOAWAY on the control stream: %v", err)
				}
				if qc.Context().Err() != nil {
					t.Fatalf("Retire closed the idle connection: %v", context.Cause(qc.Context()))
				}
				qc.CloseWithError(0, "") // as a client does once its requests are done
				if err := <-stopped; err != nil {
					t.Fatalf("Retire: %v, want nil once the client closed", err)
				}
			}
			if n := h.m.Active.Load(); n != 0 {
				t.Errorf("%d connections open after the stop", n)
			}
		})
	}
}

// readGoAway reads an HTTP/3 control stream (RFC 9114 §6.2.1) up to its
// GOAWAY frame (type 0x07, §7.2.6).
func readGoAway(str *quic.ReceiveStream) error {
	r := quicvarint.NewReader(str)
	if typ, err := quicvarint.Read(r); err != nil || typ != 0 {
		return fmt.Errorf("stream type %d, %v; want a control stream", typ, err)
	}
	for {
		typ, err := quicvarint.Read(r)
		if err != nil {
			return err
		}
		n, err := quicvarint.Read(r)
		if err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return err
		}
		if typ == 0x07 {
			return nil
		}
	}
}

// TestHTTP3StopCutsAtDeadline: a request still in the handler when the
// stop's context ends is cut; Shutdown returns the context's error and
// leaves no goroutine behind.
func TestHTTP3StopCutsAtDeadline(t *testing.T) {
	leaks(t)
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	p := retireProxy(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	s, h, addr, ctls := startH3Host(t, p, ServerConfig{}, nil)
	got := getLater(h3Client(t, ctls), "https://"+addr+"/")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(ctx) }()
	cancel()
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v, want context.Canceled", err)
	}
	if g := <-got; g == "" {
		t.Error("the cut request got an empty body, want an error")
	}
	if n := h.m.Active.Load(); n != 0 {
		t.Errorf("%d connections open after the stop", n)
	}
}
