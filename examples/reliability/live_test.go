package reliability

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/tlspolicy"
)

// Everything an HTTPS listener lets change live changes while clients
// keep it busy over kept-alive HTTP/2 and HTTP/1.1 connections and new
// connections: backends come and go, weights change, the ACL is swapped
// and edited, certificates and the TLS policy are replaced. No request
// may fail, and each change shows on the next new connection or request.
func TestLiveChangeUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	ca := newCert(t, nil, 1)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	a, b, c, d := startHTTP(t, "a", local, nil), startHTTP(t, "b", local, nil), startHTTP(t, "c", local, nil), startHTTP(t, "d", local, nil)
	all := []*backend{a, b, c, d}
	g := newGroup(t, balancer.Config{Scheduler: balancer.WeightedRoundRobin()}, a, b, c)
	strict13, err := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)
	require.NoError(t, err)
	only12, err := tlspolicy.Lookup(tlspolicy.Policy12)
	require.NoError(t, err)
	l, _, addr := addListener(t, listener.Config{Protocol: listener.HTTPS, Group: g, HealthCheck: fastHealth(health.KindHTTP),
		HTTP: listener.HTTPOptions{
			Certificate: newCert(t, ca, 10, "default.test"),
			Domains:     map[string]*tls.Certificate{"sni.test": newCert(t, ca, 20, "sni.test")},
			TLSPolicy:   strict13,
		}})
	url := "https://" + addr + "/"
	trust := func(name string) *tls.Config { return &tls.Config{RootCAs: roots, ServerName: name} }
	clients := []*http.Client{
		httpClient(t, &http.Transport{TLSClientConfig: trust("default.test"), ForceAttemptHTTP2: true}), // HTTP/2, one kept-alive connection
		httpClient(t, &http.Transport{TLSClientConfig: trust("sni.test"), MaxIdleConnsPerHost: 8}),      // HTTP/1.1, kept alive
		httpClient(t, &http.Transport{TLSClientConfig: trust("default.test"), DisableKeepAlives: true}), // a new connection per request
		httpClient(t, &http.Transport{TLSClientConfig: trust("sni.test"), DisableKeepAlives: true}),     // the same, by SNI
	}
	// probe is a client from 127.0.0.2, on a new connection per request,
	// to see the ACL in force.
	probe := httpClient(t, &http.Transport{TLSClientConfig: trust("default.test"), DisableKeepAlives: true,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext})
	probeStatus := func() int {
		t.Helper()
		code, _, err := get(probe, url)
		require.NoError(t, err, "probe from 127.0.0.2")
		return code
	}
	// handshake makes a new TLS connection for SNI name and returns its state.
	handshake := func(name string) tls.ConnectionState {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, trust(name))
		require.NoError(t, err, "handshake for %s", name)
		defer conn.Close()
		return conn.ConnectionState()
	}
	serial := func(name string) int64 { return handshake(name).PeerCertificates[0].SerialNumber.Int64() }
	// after waits until the load has completed n more requests.
	var (
		mu        sync.Mutex
		completed int
	)
	after := func(n int) {
		t.Helper()
		mu.Lock()
		target := completed + n
		mu.Unlock()
		eventually(t, 20*time.Second, fmt.Sprintf("%d more requests", n), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return completed >= target
		})
	}
	// quiesce waits until backend x has no request in flight through the
	// listener and the load has completed 50 more requests, then returns
	// its hits: a request picked just before x left may still have been
	// on its way to x until then.
	quiesce := func(x *backend) int64 {
		t.Helper()
		eventually(t, 10*time.Second, x.name+"'s requests in flight to end", func() bool { return l.Stats().Backends[x.name].Active == 0 })
		after(50)
		return x.hits.Load()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var y *tally
	done := make(chan struct{})
	go func() {
		defer close(done)
		y = load(ctx, 12, 1_000_000, func(w, _ int) error {
			_, err := getOK(clients[w%len(clients)], url)
			mu.Lock()
			completed++
			mu.Unlock()
			return err
		})
	}()
	defer func() { cancel(); <-done }()
	after(100)
	var steps []string
	step := func(s string) { steps = append(steps, s) }

	// Backends: add d, remove a, drain b and bring it back at weight 30.
	require.NoError(t, g.Add(d.member(100)))
	eventually(t, 10*time.Second, "the added backend to get traffic", func() bool { return d.hits.Load() > 0 })
	step("added d: traffic")
	require.NoError(t, g.Remove(a.name))
	aLeft := quiesce(a)
	step("removed a: none after in-flight")
	require.NoError(t, g.SetState(b.name, balancer.Drain))
	bDrained := quiesce(b)
	after(200)
	assert.Equal(t, bDrained, b.hits.Load(), "b's requests while draining")
	require.NoError(t, g.SetWeight(b.name, 30))
	require.NoError(t, g.SetState(b.name, balancer.Ready))
	eventually(t, 10*time.Second, "b to get traffic again at weight 30", func() bool { return b.hits.Load() > bDrained })
	step("b draining: none after in-flight; ready at weight 30: traffic")

	// ACL: a whitelist of 127.0.0.1, edited to let 127.0.0.2 in, then
	// swapped for a blacklist of 127.0.0.2, edited to let it in again.
	entry := func(s string) acl.Entry { return acl.Entry{Prefix: netip.MustParsePrefix(s)} }
	bind := func(name string, mode acl.Mode, e acl.Entry) (*acl.Group, *acl.Policy) {
		t.Helper()
		grp, err := acl.NewGroup(acl.GroupConfig{Name: name, Family: acl.IPv4}, e)
		require.NoError(t, err)
		p, err := acl.NewPolicy(acl.PolicyConfig{Group: grp, Mode: mode, Family: acl.IPv4})
		require.NoError(t, err)
		require.NoError(t, l.SetACL(p))
		return grp, p
	}
	white, _ := bind("clients", acl.Whitelist, entry("127.0.0.1/32"))
	wantStatus := func(what string, want int) {
		t.Helper()
		assert.Equal(t, want, probeStatus(), "%s: status for 127.0.0.2", what)
	}
	wantStatus("whitelist of 127.0.0.1", http.StatusForbidden)
	require.NoError(t, white.Add(entry("127.0.0.2/32")))
	wantStatus("127.0.0.2 added to the whitelist", http.StatusOK)
	black, _ := bind("blocked", acl.Blacklist, entry("127.0.0.2/32"))
	wantStatus("blacklist of 127.0.0.2", http.StatusForbidden)
	require.NoError(t, black.Replace(entry("192.0.2.0/24")))
	wantStatus("blacklist edited to 192.0.2.0/24", http.StatusOK)
	require.NoError(t, l.SetACL(nil))
	step("ACL swapped and edited: 127.0.0.2 refused, allowed, refused, allowed")

	// Certificates: the default and an extension domain's.
	require.NoError(t, l.Certificates().SetDefault(newCert(t, ca, 11, "default.test")))
	assert.Equal(t, int64(11), serial("default.test"), "default certificate's serial after SetDefault")
	require.NoError(t, l.Certificates().Set("sni.test", newCert(t, ca, 21, "sni.test")))
	assert.Equal(t, int64(21), serial("sni.test"), "sni.test certificate's serial after Set")
	after(100)
	step("certificates replaced: serials 10→11, 20→21")

	// TLS policy: TLS 1.2 only, then 1.2 and 1.3 again.
	for _, tt := range []struct {
		p    *tlspolicy.Policy
		want uint16
	}{{only12, tls.VersionTLS12}, {strict13, tls.VersionTLS13}} {
		require.NoError(t, l.SetTLSPolicy(tt.p))
		assert.Equal(t, tls.VersionName(tt.want), tls.VersionName(handshake("default.test").Version), "TLS version of a new connection under %s", tt.p.Name)
		after(100)
	}
	step("TLS policy 1_2 (new connection: TLS 1.2), back to 1_2_strict_with_1_3 (TLS 1.3)")

	// The scheduler, then the whole membership, as a reload does: a
	// returns.
	require.NoError(t, l.SetScheduler(balancer.LeastConnections()))
	after(100)
	require.NoError(t, l.SetScheduler(balancer.WeightedRoundRobin()))
	aGone := a.hits.Load() - aLeft
	assert.Zero(t, aGone, "removed backend a's requests after its in-flight ones ended")
	require.NoError(t, g.Replace([]balancer.Backend{a.member(100), b.member(30), c.member(100), d.member(100)}))
	eventually(t, 10*time.Second, "a to get traffic again after Replace", func() bool { return a.hits.Load() > aLeft })
	step("scheduler wlc, back to wrr; membership replaced (a back): traffic")

	cancel()
	<-done
	y.all(t, int(y.sent.Load()))
	st := l.Stats()
	Record(t, "HTTPS listener (wrr, HTTP health checks) under 12 client workers: HTTP/2 and HTTP/1.1 kept alive, HTTP/1.1 with a new connection per request (SNI default.test and sni.test); changed live: "+strings.Join(steps, "; "),
		"%d requests, %d failed; served %s; a got %d between its removal (once its in-flight requests ended) and its return; ACL refusals %d (all the 127.0.0.2 probe's)",
		y.sent.Load(), y.failed.Load(), hits(all...), aGone, st.RefusedACL)
}

// Stop lets requests in flight finish, refuses new connections at once,
// and leaves no goroutine behind.
func TestGracefulStop(t *testing.T) {
	for _, protocol := range []listener.Protocol{listener.HTTP, listener.HTTPS} {
		t.Run(string(protocol), func(t *testing.T) {
			leakcheck.Check(t)
			const n = 8
			h := holdRequests(t, protocol, n)
			stopped := make(chan error, 1)
			go func() { stopped <- stopWithin(20*time.Second, h.in.Stop) }()
			eventually(t, 5*time.Second, "new connections to be refused", func() bool { return refused(h.addr) })
			select {
			case err := <-stopped:
				require.FailNow(t, "Stop returned early", "Stop returned (%v) with %d requests in flight", err, n)
			default:
			}
			h.release()
			for range n {
				assert.NoError(t, <-h.results, "request in flight at Stop")
			}
			assert.NoError(t, <-stopped, "Stop")
			Record(t, fmt.Sprintf("%s listener, %d requests held in the backend (HTTP/1.1 on HTTP, one HTTP/2 connection on HTTPS); Instance.Stop; a new dial; then the backend answers", strings.ToUpper(string(protocol)), n),
				"new dials refused while the %d were in flight; all %d answered 200; Stop returned nil once they had; no goroutine left", n, n)
		})
	}
	t.Run("tcp", func(t *testing.T) {
		leakcheck.Check(t)
		const n = 4
		l, addr, conns := openEchoes(t, n)
		stopped := make(chan error, 1)
		go func() { stopped <- stopWithin(20*time.Second, l.Stop) }()
		eventually(t, 5*time.Second, "new connections to be refused", func() bool { return refused(addr) })
		for i, c := range conns {
			assert.NoError(t, ping(c), "connection %d after Stop began", i)
		}
		select {
		case err := <-stopped:
			require.FailNow(t, "Stop returned early", "Stop returned (%v) with %d connections open", err, n)
		default:
		}
		for _, c := range conns {
			c.Close()
		}
		assert.NoError(t, <-stopped, "Stop")
		Record(t, fmt.Sprintf("TCP listener, %d echo connections open; Listener.Stop; a new dial; an echo on each; then the clients close", n),
			"new dials refused; all %d still echoed after Stop began; Stop returned nil once they closed; no goroutine left", n)
	})
}

// When Stop's context ends first, it cuts what is left, returns the
// context's error and leaves no goroutine behind; Start then serves again.
func TestStopDeadlineAndRestart(t *testing.T) {
	const n, grace = 4, 300 * time.Millisecond
	for _, protocol := range []listener.Protocol{listener.HTTP, listener.HTTPS} {
		t.Run(string(protocol), func(t *testing.T) {
			leakcheck.Check(t)
			h := holdRequests(t, protocol, n)
			assert.ErrorIs(t, stopWithin(grace, h.l.Stop), context.DeadlineExceeded, "Stop")
			for range n {
				assert.Error(t, <-h.results, "request cut by Stop")
			}
			require.NoError(t, h.l.Start())
			// The client's transport may retry a cut request on a new
			// connection while the listener is stopped, and a GET made
			// now would wait on that failed dial: ask until one answers.
			var body string
			eventually(t, 5*time.Second, "a GET after the restart to be answered", func() bool {
				var err error
				body, err = h.get("/")
				return err == nil
			})
			assert.Equal(t, "slow", body)
			Record(t, fmt.Sprintf("%s listener, %d requests held in the backend; Listener.Stop with a %s deadline; Listener.Start; a GET", strings.ToUpper(string(protocol)), n, grace),
				"Stop returned %v; the %d held requests were cut; after Start the GET got 200; no goroutine left (the backend's handlers saw their requests end)", context.DeadlineExceeded, n)
		})
	}
	t.Run("tcp", func(t *testing.T) {
		leakcheck.Check(t)
		l, addr, conns := openEchoes(t, n)
		assert.ErrorIs(t, stopWithin(grace, l.Stop), context.DeadlineExceeded, "Stop")
		for i, c := range conns {
			assert.Error(t, ping(c), "connection %d after a hard stop", i)
		}
		require.NoError(t, l.Start())
		_, err := echo(addr)
		assert.NoError(t, err, "echo after the restart")
		Record(t, fmt.Sprintf("TCP listener, %d echo connections open; Listener.Stop with a %s deadline; Listener.Start; a new connection", n, grace),
			"Stop returned %v; the %d connections were cut; after Start a new connection echoed; no goroutine left", context.DeadlineExceeded, n)
	})
}

// held is an HTTP or HTTPS listener (one instance) over a backend,
// "slow", that holds every request for /hold until release, with n such
// requests held; each one's outcome goes to results. HTTPS clients speak
// HTTP/2, all n requests on one connection.
type held struct {
	l       *listener.Listener
	in      *listener.Instance
	addr    string
	get     func(path string) (string, error) // a GET through the listener
	release func()
	results chan error
}

func holdRequests(t *testing.T, protocol listener.Protocol, n int) *held {
	t.Helper()
	gate := make(chan struct{})
	h := &held{release: sync.OnceFunc(func() { close(gate) }), results: make(chan error, n)}
	t.Cleanup(h.release)
	slow := startHTTP(t, "slow", local, func(_ http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
	})
	cfg := listener.Config{Protocol: protocol, Group: newGroup(t, balancer.Config{}, slow)}
	tr := &http.Transport{}
	if protocol == listener.HTTPS {
		useTLS(t, &cfg, tr)
	}
	h.l, h.in, h.addr = addListener(t, cfg)
	c := httpClient(t, tr)
	h.get = func(path string) (string, error) {
		return getOK(c, strings.ToLower(string(protocol))+"://"+h.addr+path)
	}
	for range n {
		go func() {
			_, err := h.get("/hold")
			h.results <- err
		}()
	}
	eventually(t, 10*time.Second, "every request to reach the backend", func() bool { return slow.hits.Load() == int64(n) })
	return h
}

// openEchoes starts a TCP listener over an echo backend and opens n
// connections through it, closed when the test ends.
func openEchoes(t *testing.T, n int) (*listener.Listener, string, []net.Conn) {
	t.Helper()
	l, _, addr := addListener(t, listener.Config{Protocol: listener.TCP, Group: newGroup(t, balancer.Config{}, startEcho(t, "echo", local))})
	conns := make([]net.Conn, n)
	for i := range conns {
		c, _, err := dialEcho(addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return l, addr, conns
}
