package reliability

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/listener"
)

// A backend is a server on loopback: an HTTP server answering with its
// name, or a TCP server greeting each connection with its name and a
// newline, then echoing.
type backend struct {
	name, addr string
	hits       atomic.Int64 // HTTP requests (not health probes) or TCP connections accepted
	// kill closes the listening socket and every open connection at once,
	// as a crashed process would: new dials are refused, kept-alive and
	// in-flight connections die. It is idempotent and runs at cleanup.
	kill func()
}

func (b *backend) member(weight int) balancer.Backend {
	return balancer.Backend{ID: b.name, Addr: b.addr, Weight: weight}
}

// local is the address of a backend on a fresh loopback port.
const local = "127.0.0.1:0"

// fastHealth checks every second (the shortest interval health allows)
// and changes a state after 2 results (the fewest). Its timeout is 3 s, not
// the shortest (1 s): a dead backend refuses at once, while a probe of a
// live one can wait that long for a CPU under -race on two shared CPUs,
// and with 1 s every backend was once marked down. HTTP probes ask for
// healthPath. Targets start healthy, as if the listener had run for a
// while: a pending target's first failure would take it out at once.
func fastHealth(kind health.Kind) *health.Config {
	return &health.Config{Kind: kind, URI: healthPath, Interval: time.Second, Timeout: 3 * time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2, TrustNew: true}
}

// healthPath is the path of HTTP health probes, which backends do not
// count as hits.
const healthPath = "/healthz"

// listen listens on addr, "127.0.0.1:0" for a fresh port.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	return ln
}

// startHTTP starts an HTTP backend on addr, set up by opts. Its handler
// counts the request (unless it is a health probe), runs before (if set),
// then writes the backend's name.
func startHTTP(t *testing.T, name, addr string, before http.HandlerFunc, opts ...func(*http.Server)) *backend {
	t.Helper()
	ln := listen(t, addr)
	b := &backend{name: name, addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != healthPath {
				b.hits.Add(1)
			}
			if before != nil {
				before(w, r)
			}
			io.WriteString(w, name)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	for _, o := range opts {
		o(srv)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	// http.Server.Close closes new, active and idle connections alike.
	b.kill = sync.OnceFunc(func() { srv.Close(); <-done })
	t.Cleanup(b.kill)
	return b
}

// startEcho starts a TCP echo backend on addr.
func startEcho(t *testing.T, name, addr string) *backend {
	t.Helper()
	ln := listen(t, addr)
	b := &backend{name: name, addr: ln.Addr().String()}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		killed bool
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.hits.Add(1)
			mu.Lock()
			if killed {
				c.Close()
			}
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, name+"\n"); err == nil {
					io.Copy(c, c)
				}
			})
		}
	})
	b.kill = sync.OnceFunc(func() {
		ln.Close()
		mu.Lock()
		killed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	t.Cleanup(b.kill)
	return b
}

// hits returns each backend's hits, as "name=n" in order.
func hits(bs ...*backend) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = fmt.Sprintf("%s=%d", b.name, b.hits.Load())
	}
	return strings.Join(s, " ")
}

// newGroup returns a group of bs at weight 100 each.
func newGroup(t *testing.T, cfg balancer.Config, bs ...*backend) *balancer.Group {
	t.Helper()
	ms := make([]balancer.Backend, len(bs))
	for i, b := range bs {
		ms[i] = b.member(100)
	}
	g, err := balancer.New(cfg, ms...)
	require.NoError(t, err)
	return g
}

// unhealthy returns a condition: member id of g is unhealthy.
func unhealthy(g *balancer.Group, id string) func() bool {
	return func() bool {
		m, ok := g.Member(id)
		return ok && !m.Healthy()
	}
}

// newInstance returns an instance whose listeners stop when the test ends.
func newInstance(t *testing.T) *listener.Instance {
	t.Helper()
	in, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-reliability", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.Stop(ctx)
	})
	return in
}

// addListener adds cfg to a new instance on 127.0.0.1 at a port the
// system picks and returns it with its address.
func addListener(t *testing.T, cfg listener.Config) (*listener.Listener, *listener.Instance, string) {
	t.Helper()
	in := newInstance(t)
	cfg.Host = "127.0.0.1"
	l, err := in.Add(cfg)
	require.NoError(t, err, "Add")
	return l, in, l.Addrs()[0].String()
}

// A tally counts the operations of a load loop and keeps its first errors.
type tally struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	errs         []error
}

// all asserts that all n operations ran and none failed.
func (y *tally) all(t *testing.T, n int) bool {
	t.Helper()
	return assert.Equal(t, int64(n), y.sent.Load(), "operations run") && assert.Zero(t, y.failed.Load(), "failures: %s", y)
}

func (y *tally) String() string {
	y.mu.Lock()
	defer y.mu.Unlock()
	return fmt.Sprintf("%d sent, %d failed %v", y.sent.Load(), y.failed.Load(), y.errs)
}

// load runs op for i = 0, 1, … n-1 on workers goroutines, until n are done
// or ctx ends, and returns when every worker has.
func load(ctx context.Context, workers, n int, op func(worker, i int) error) *tally {
	y := new(tally)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				y.sent.Add(1)
				if err := op(w, i); err != nil {
					y.failed.Add(1)
					y.mu.Lock()
					if len(y.errs) < 5 {
						y.errs = append(y.errs, fmt.Errorf("op %d: %w", i, err))
					}
					y.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return y
}

// httpClient returns a client of tr whose idle connections close at the
// end of the test.
func httpClient(t *testing.T, tr *http.Transport) *http.Client {
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// get fetches url and returns the status and body.
func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// getOK fetches url and returns the body, or an error unless it is 200.
func getOK(c *http.Client, url string) (string, error) {
	code, body, err := get(c, url)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %q", code, body)
	}
	return body, err
}

// dialEcho connects to an echo backend through addr and returns the
// connection and the name the backend greeted it with.
func dialEcho(addr string) (net.Conn, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 1)
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("greeting: %w", err)
	}
	return c, strings.TrimSuffix(string(buf[:n]), "\n"), nil
}

// ping makes one echo round trip on c.
func ping(c net.Conn) error {
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		return fmt.Errorf("echo %q: %v", buf, err)
	}
	return nil
}

// echo connects through addr, makes one echo round trip and closes; it
// returns the backend's name.
func echo(addr string) (string, error) {
	c, name, err := dialEcho(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return name, ping(c)
}

// eventually polls cond every 5 ms until it holds, failing the test after
// limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(limit, cond) {
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}

// waitFor polls cond every 5 ms until it holds or limit passes, and
// reports whether it held.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// refused reports whether dialing addr is refused.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// openFDs counts the process's open file descriptors (Linux), -1 elsewhere.
func openFDs() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// newCert returns an ECDSA P-256 certificate with the given serial: a CA
// when parent is nil, else a server certificate for names signed by
// parent.
func newCert(t *testing.T, parent *tls.Certificate, serial int64, names ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: fmt.Sprint("lbkit reliability ", serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	signer, signerKey := tmpl, any(key)
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// useTLS gives cfg a certificate for lb.test from a fresh CA, and tr a
// client configuration that trusts it and speaks HTTP/2.
func useTLS(t *testing.T, cfg *listener.Config, tr *http.Transport) {
	t.Helper()
	ca := newCert(t, nil, 1)
	cfg.HTTP.Certificate = newCert(t, ca, 2, "lb.test")
	tr.ForceAttemptHTTP2 = true
	tr.TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "lb.test"}
	tr.TLSClientConfig.RootCAs.AddCert(ca.Leaf)
}

// stopWithin calls stop (Instance.Stop or Listener.Stop) with a context
// that ends after limit.
func stopWithin(limit time.Duration, stop func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return stop(ctx)
}
