package reliability_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/internal/testpki"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/tlspolicy"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h3Listener starts an HTTPS listener with HTTP/3 and opts to backend b,
// and returns it with a client TLS config trusting it (ALPN h3).
func h3Listener(t *testing.T, b *backend, opts listener.HTTPOptions) (*listener.Listener, *tls.Config) {
	t.Helper()
	server, client := testpki.LoopbackTLS(t, http3.NextProtoH3)
	policy, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	require.NoError(t, err)
	opts.HTTP3, opts.Certificate, opts.TLSPolicy = true, &server.Certificates[0], policy
	l := addListener(t, listener.Config{Protocol: listener.HTTPS, Group: newGroup(t, b), HTTP: opts})
	client.NextProtos = []string{http3.NextProtoH3}
	return l, client
}

// h3Get asks c for url n times and returns how many did not answer 200.
func h3Get(c *http.Client, url string, n int) (failed int) {
	for range n {
		resp, err := c.Get(url)
		if err != nil {
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
		}
	}
	return failed
}

func newH3Client(t *testing.T, tc *tls.Config) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: tc.Clone(), QUICConfig: &quic.Config{HandshakeIdleTimeout: 2 * time.Second}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// oneShot is an HTTP/3 client whose connection closes after its
// first exchange, so measurements after it count none of its goroutines.
func oneShot(t *testing.T, tc *tls.Config) *http.Client {
	t.Helper()
	c := newH3Client(t, tc)
	c.Transport = closeAfter{c.Transport.(*http3.Transport)}
	return c
}

type closeAfter struct{ tr *http3.Transport }

func (c closeAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.tr.RoundTrip(r)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	c.tr.Close()
	return resp, err
}

func randomBytes(max int64) []byte {
	n, _ := rand.Int(rand.Reader, big.NewInt(max+1))
	b := make([]byte, n.Int64())
	rand.Read(b)
	return b
}

// Garbage datagrams on an HTTP/3 listener's UDP port from many source
// ports: random bytes, truncated Initial packets, long headers of
// unknown versions, short headers naming no connection. A client
// connected before keeps being served, nothing accumulates.
func TestHTTP3HostileGarbage(t *testing.T) {
	const senders = 100
	l, ctls := h3Listener(t, startBackend(t, "b"), listener.HTTPOptions{})
	c := newH3Client(t, ctls)
	url := "https://" + addr(l) + "/"
	// Warm: the connection's control and QPACK streams are up.
	require.Zero(t, h3Get(c, url, 5))
	before := measure()

	dcid := string(make([]byte, 8))
	shapes := []func() []byte{
		func() []byte { return randomBytes(1500) },
		// Initials of version 1, cut anywhere in the header or payload.
		func() []byte {
			p := append([]byte("\xc0\x00\x00\x00\x01\x08"+dcid+"\x00\x00\x44\xd0"), randomBytes(1300)...)
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(p))))
			return p[:n.Int64()]
		},
		// A full-size Initial with garbage where the protected payload is.
		func() []byte {
			p := append([]byte("\xc0\x00\x00\x00\x01\x08"+dcid+"\x08"+dcid+"\x00\x44\xd0"), make([]byte, 1200)...)
			rand.Read(p[len(p)-1200:])
			return p
		},
		// Long headers of unknown versions: Version Negotiation at most.
		func() []byte {
			p := append([]byte("\xc0\x1a\x2a\x3a\x4a\x08"+dcid+"\x08"+dcid), make([]byte, 1200)...)
			rand.Read(p[1:5])
			return p
		},
		// Short headers for connections that do not exist.
		func() []byte { return append([]byte{0x40}, randomBytes(100)...) },
	}
	sent := 0
	var during usage
	failed := 0
	for i := range senders {
		u := udpDial(t, addr(l))
		for range 4 {
			for _, shape := range shapes {
				u.Write(shape())
				sent++
			}
		}
		if i == senders/2 {
			during = measure()
		}
		u.Close()
		if i%20 == 19 {
			failed += h3Get(c, url, 2)
		}
	}
	failed += h3Get(c, url, 10)
	after := settle(before.goroutines)
	fresh := h3Get(oneShot(t, ctls), url, 1)
	assert.Zero(t, failed, "requests of the connected client failed")
	assert.Zero(t, fresh, "a new client failed")
	assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after")
	reliability.Record(t, fmt.Sprintf("%d datagrams from %d source ports to an HTTP/3 listener: random bytes, truncated and garbled Initials, unknown versions, short headers", sent, senders),
		"connected HTTP/3 client: %d requests failed of 20; a new client served; goroutines %d → %d → %d, heap %s → %s → %s, fds %d → %d → %d",
		failed, before.goroutines, during.goroutines, after.goroutines, mib(before.heap), mib(during.heap), mib(after.heap), before.fds, during.fds, after.fds)
}

// A handshake flood from many source ports beyond MaxQUICHandshakes:
// real quic-go clients that stall before their last handshake flight
// (their certificate check waits), each on its own socket. From half
// the limit on the listener demands a Retry, at the limit it refuses;
// a connected client is served throughout, and once the flood ends
// the slots come back and a new client is served.
func TestHTTP3HostileHandshakeFlood(t *testing.T) {
	const limit, flood = 64, 128
	l, ctls := h3Listener(t, startBackend(t, "b"), listener.HTTPOptions{MaxQUICHandshakes: limit})
	c := newH3Client(t, ctls)
	url := "https://" + addr(l) + "/"
	require.Zero(t, h3Get(c, url, 1))
	before := measure()

	stall := make(chan struct{})
	var done sync.WaitGroup
	var held, nrefused atomic.Int64
	hostile := ctls.Clone()
	hostile.VerifyConnection = func(tls.ConnectionState) error { held.Add(1); <-stall; return nil }
	for range flood {
		done.Add(1)
		go func() {
			defer done.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := quic.DialAddr(ctx, addr(l), hostile, &quic.Config{HandshakeIdleTimeout: 10 * time.Second})
			if err != nil {
				nrefused.Add(1)
				return
			}
			conn.CloseWithError(0, "")
		}()
	}
	waitFor(t, "every flood client to be held or refused", func() bool { return held.Load()+nrefused.Load() == flood })
	failed := h3Get(c, url, 10)
	during := measure()
	mid := held.Load()
	close(stall)
	done.Wait()
	waitFor(t, "a new client to be served", func() bool { return h3Get(oneShot(t, ctls), url, 1) == 0 })
	after := settle(before.goroutines)
	st := l.Stats()
	assert.Zero(t, failed, "the connected client's requests during the flood")
	assert.Equal(t, int64(limit), mid, "handshakes held at once")
	assert.Equal(t, int64(flood-limit), nrefused.Load(), "flood clients refused")
	assert.Positive(t, st.QUICRetries, "Retry packets")
	assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after")
	reliability.Record(t, fmt.Sprintf("%d quic-go clients from as many source ports stall their handshakes (MaxQUICHandshakes %d, Retry from %d)", flood, limit, limit/2),
		"%d handshakes held at most, %d clients refused (CONNECTION_REFUSED; %d Initials refused), %d Retry packets; connected client: %d requests failed of 10; a new client served once the flood ended; goroutines %d → %d → %d, heap %s → %s → %s, fds %d → %d → %d",
		mid, nrefused.Load(), st.QUICHandshakesRefused, st.QUICRetries, failed,
		before.goroutines, during.goroutines, after.goroutines, mib(before.heap), mib(during.heap), mib(after.heap), before.fds, during.fds, after.fds)
}

// Streams left open: one client opens request streams and sends one
// byte of a HEADERS frame on each, never the rest, and keeps its QUIC
// connection alive with PINGs; another sends request headers and a
// body it never finishes. quic-go's stream limit bounds the first per
// connection, and the HTTP/3 idle timeout closes it, since no request
// of it ever reaches the handler (the PINGs keep QUIC's own idle
// timeout away). The second's requests are in the handler: they last
// until their client gives up (its 10 s timeout here), since no
// protocol's request body has a read timeout (RequestTimeout starts
// once a request is sent whole). A connected client is served
// throughout.
func TestHTTP3HostileOpenStreams(t *testing.T) {
	const streams, bodies = 150, 50
	idle := time.Second
	l, ctls := h3Listener(t, startBackend(t, "b"), listener.HTTPOptions{IdleTimeout: idle})
	c := newH3Client(t, ctls)
	url := "https://" + addr(l) + "/"
	require.Zero(t, h3Get(c, url, 1))
	before := measure()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := quic.DialAddr(ctx, addr(l), ctls, &quic.Config{KeepAlivePeriod: idle / 4})
	require.NoError(t, err)
	opened := 0
	for range streams {
		str, err := raw.OpenStream()
		if err != nil {
			break // beyond the listener's stream limit
		}
		str.Write([]byte{0x01}) // HEADERS, and nothing after
		opened++
	}
	streamsOpen := time.Now()
	var headless atomic.Int64 // how long the header-less streams' connection lasted
	go func() {
		<-raw.Context().Done()
		headless.Store(int64(time.Since(streamsOpen)))
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	ends := map[string]int{}
	slow := newH3Client(t, ctls)
	for range bodies {
		wg.Go(func() {
			pr, pw := io.Pipe()
			defer pw.Close()
			go pw.Write([]byte("part of a body"))
			req, _ := http.NewRequest(http.MethodPost, url, pr)
			resp, err := slow.Do(req)
			end := "error"
			if err == nil {
				resp.Body.Close()
				end = resp.Status
			}
			mu.Lock()
			ends[end]++
			mu.Unlock()
		})
	}
	waitFor(t, "the unfinished bodies to reach the handler", func() bool { return l.Stats().HTTP3Requests >= bodies+1 })
	failed := h3Get(c, url, 10)
	during := measure()
	start := time.Now()
	wg.Wait()
	timedOut := time.Since(start)
	waitFor(t, "the header-less streams' connection to close", func() bool { return headless.Load() != 0 })
	gone := time.Duration(headless.Load())
	after := settle(before.goroutines)
	assert.Zero(t, failed, "the connected client's requests")
	assert.Less(t, opened, streams, "streams opened: the stream limit stops them")
	assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after")
	reliability.Record(t, fmt.Sprintf("one client opens %d HTTP/3 request streams with one byte of HEADERS each and keeps QUIC alive with PINGs; %d requests send headers and never finish their body (IdleTimeout %v); both clients then go quiet", streams, bodies, idle),
		"%d streams accepted (quic-go's stream limit), connection closed by the HTTP/3 idle timeout %v after they opened; unfinished bodies ended %v in %v, when their client gave up; connected client: %d requests failed of 10; goroutines %d → %d → %d, heap %s → %s → %s, fds %d → %d → %d",
		opened, gone.Round(100*time.Millisecond), ends, timedOut.Round(100*time.Millisecond), failed,
		before.goroutines, during.goroutines, after.goroutines, mib(before.heap), mib(during.heap), mib(after.heap), before.fds, during.fds, after.fds)
}
