package reliability

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// opsConfig is the file of the operations tests: an http listener over
// backends a and b, a tcp listener over echo backend e, a udp listener
// over echo backend u; the test fills the ports, the weights W* and
// extra listeners.
const opsConfig = `LoadBalancerId: lb-ops
AdminAddress: 127.0.0.1:0
VServerGroups:
  - VServerGroupId: web
    BackendServers:
      - {ServerId: a, ServerIp: 127.0.0.1, Port: PA, Weight: WA}
      - {ServerId: b, ServerIp: 127.0.0.1, Port: PB, Weight: 100}
  - VServerGroupId: echo
    BackendServers:
      - {ServerId: e, ServerIp: 127.0.0.1, Port: PE, Weight: WE}
  - VServerGroupId: dgram
    BackendServers:
      - {ServerId: u, ServerIp: 127.0.0.1, Port: PU, Weight: WU}
Listeners:
  - {ListenerProtocol: http, ListenerPort: HTTP, VServerGroupId: web, HealthCheck: "off"}
  - {ListenerProtocol: tcp, ListenerPort: TCP, VServerGroupId: echo, HealthCheck: "off"}
  - {ListenerProtocol: udp, ListenerPort: UDP, VServerGroupId: dgram, HealthCheck: "off"}
`

// opsToken is the operations tests' admin token, named ops.
const opsToken = "ops-0123456789abcdef"

// opsRig is a clb over real backends, configured by a file.
type opsRig struct {
	path  string            // the configuration file
	ports *strings.Replacer // backend and listener ports
	tcp   int               // the tcp listener's port
	http  string            // the http listener's URL
	udp   string            // the udp listener's address
	p     *clbProc
}

// newOpsRig starts the backends and a clb with -admin-tokens and args
// on opsConfig at weights 100.
func newOpsRig(t *testing.T, args ...string) *opsRig {
	t.Helper()
	a, b := startHTTP(t, "a", local, nil), startHTTP(t, "b", local, nil)
	e := startEcho(t, "e", local)
	pu := startUDPEcho(t)
	httpPort, tcpPort, udpPort := freePort(t), freePort(t), freePort(t)
	r := &opsRig{
		path: filepath.Join(t.TempDir(), "lb.yaml"),
		ports: strings.NewReplacer("PA", strconv.Itoa(port(t, a.addr)), "PB", strconv.Itoa(port(t, b.addr)), "PE", strconv.Itoa(port(t, e.addr)),
			"PU", strconv.Itoa(pu), "HTTP", strconv.Itoa(httpPort), "TCP", strconv.Itoa(tcpPort), "UDP", strconv.Itoa(udpPort)),
		tcp:  tcpPort,
		http: fmt.Sprintf("http://127.0.0.1:%d/", httpPort),
		udp:  fmt.Sprintf("127.0.0.1:%d", udpPort),
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops:"+opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.path, []byte(r.config("100", "100", "100", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	r.p = startCLB(t, append([]string{"-config", r.path, "-admin-tokens", tokens}, args...)...)
	return r
}

// config is opsConfig with weights wa (backend a), we, wu and extra
// listeners.
func (r *opsRig) config(wa, we, wu, extra string) string {
	return strings.NewReplacer("WA", wa, "WE", we, "WU", wu).Replace(r.ports.Replace(opsConfig)) + extra
}

// opsLoad is the clients of an operations test, each counted apart
// until stopped: HTTP over kept-alive connections and over a new
// connection per request, one TCP stream echoing and one UDP flow
// echoing.
type opsLoad struct {
	keep, fresh, tcp, udp tally
	stop                  func() // ends the clients and waits for them; idempotent
}

func startOpsLoad(t *testing.T, r *opsRig) *opsLoad {
	t.Helper()
	keep := httpClient(t, &http.Transport{MaxIdleConnsPerHost: 4})
	fresh := httpClient(t, &http.Transport{DisableKeepAlives: true})
	c, _, err := dialEcho(fmt.Sprintf("127.0.0.1:%d", r.tcp))
	if err != nil {
		t.Fatal(err)
	}
	u, err := net.Dial("udp", r.udp)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	l := &opsLoad{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(y *tally, op func(i int) error) {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				y.sent.Add(1)
				if err := op(i); err != nil {
					y.failed.Add(1)
					y.mu.Lock()
					if len(y.errs) < 5 {
						y.errs = append(y.errs, err)
					}
					y.mu.Unlock()
				}
			}
		})
	}
	for range 2 {
		run(&l.keep, func(int) error { _, err := getOK(keep, r.http); return err })
		run(&l.fresh, func(int) error { _, err := getOK(fresh, r.http); return err })
	}
	run(&l.tcp, func(int) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return ping(c)
	})
	buf := make([]byte, 64)
	run(&l.udp, func(i int) error {
		u.SetDeadline(time.Now().Add(5 * time.Second))
		msg := strconv.Itoa(i)
		if _, err := u.Write([]byte(msg)); err != nil {
			return err
		}
		n, err := u.Read(buf)
		if err == nil && string(buf[:n]) != msg {
			err = fmt.Errorf("udp echo %q, want %q", buf[:n], msg)
		}
		return err
	})
	l.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
		c.Close()
		u.Close()
	})
	t.Cleanup(l.stop)
	return l
}

// sent and failed sum the counts of every client.
func (l *opsLoad) sent() int64 {
	return l.keep.sent.Load() + l.fresh.sent.Load() + l.tcp.sent.Load() + l.udp.sent.Load()
}

func (l *opsLoad) failed() int64 {
	return l.keep.failed.Load() + l.fresh.failed.Load() + l.tcp.failed.Load() + l.udp.failed.Load()
}

// after waits until the clients have made n more requests.
func (l *opsLoad) after(t *testing.T, n int64) {
	t.Helper()
	target := l.sent() + n
	eventually(t, 20*time.Second, fmt.Sprintf("%d more requests", n), func() bool { return l.sent() >= target })
}

func (l *opsLoad) String() string {
	return fmt.Sprintf("HTTP kept alive %d, HTTP new connections %d, TCP stream echoes %d, UDP echoes %d",
		l.keep.sent.Load(), l.fresh.sent.Load(), l.tcp.sent.Load(), l.udp.sent.Load())
}

// errors lists each client's counts and first errors.
func (l *opsLoad) errors() string {
	return fmt.Sprintf("kept alive: %v; new connections: %v; TCP stream: %v; UDP flow: %v", &l.keep, &l.fresh, &l.tcp, &l.udp)
}

// A reload that changes every listener and adds one on a port another
// process holds is refused whole, by SIGHUP and by PUT /api/config,
// while clients keep every listener busy: no request fails, every
// listener keeps its old configuration, and the refusal names the
// listener and the port. Once the port is free the same file applies
// whole.
func TestReloadFailingBind(t *testing.T) {
	leakcheck.Check(t)
	r := newOpsRig(t)
	ld := startOpsLoad(t, r)
	ld.after(t, 200)
	st := r.p.status(t, "")
	before, version := shape(st), st.Process.ConfigVersion
	info := fmt.Sprintf("clb_config_info{version=%q}", version)

	held, release := holdPort(t)
	added := freePort(t)
	changed := r.config("40", "60", "70", fmt.Sprintf(
		"  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: echo, HealthCheck: \"off\"}\n"+
			"  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", added, held))
	if err := os.WriteFile(r.path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("listener http_%d (http port %d): listen tcp 127.0.0.1:%d: bind: address already in use", held, held, held)
	unchanged := func(how string) {
		t.Helper()
		ld.after(t, 200)
		st := r.p.status(t, "")
		if got := shape(st); got != before {
			t.Errorf("after the refused reload by %s:\n%s\nwant as before:\n%s", how, got, before)
		}
		if st.Process.ConfigVersion != version {
			t.Errorf("after the refused reload by %s: config version %s, want %s", how, st.Process.ConfigVersion, version)
		}
		if v := r.p.metric(t, info); v != 1 {
			t.Errorf("after the refused reload by %s: %s %v, want 1", how, info, v)
		}
		if !refused(fmt.Sprintf("127.0.0.1:%d", added)) {
			t.Errorf("after the refused reload by %s: the added listener's port %d is not free", how, added)
		}
	}

	sentBefore := ld.sent()
	sighup := time.Now()
	if err := r.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	refusal := r.p.waitLog(t, "reload refused: the old configuration keeps running", 1)[0]
	refusedIn := refusal.Time.Sub(sighup)
	if refusal.Err != want {
		t.Errorf("SIGHUP refused with %q, want %q", refusal.Err, want)
	}
	unchanged("SIGHUP")

	put := time.Now()
	code, body := r.p.adminDo(t, "PUT", "/api/config", "Bearer "+opsToken, changed)
	putIn := time.Since(put)
	if code != http.StatusConflict || !strings.Contains(body, want) {
		t.Errorf("PUT /api/config = %d %q, want 409 naming %q", code, body, want)
	}
	unchanged("PUT /api/config")
	duringRefusals := ld.sent() - sentBefore
	if got := r.p.log.lines("admin change"); len(got) != 0 {
		t.Errorf("a refused PUT logged %d \"admin change\" lines", len(got))
	}

	// The port freed, the same file applies whole.
	release()
	sighup = time.Now()
	if err := r.p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	appliedIn := r.p.waitLog(t, "reloaded", 1)[0].Time.Sub(sighup)
	ld.after(t, 200)
	st = r.p.status(t, "")
	after := shape(st)
	if st.Process.ConfigVersion == version || r.p.metric(t, info) != 0 {
		t.Errorf("after the reload with the port free, config version %s (%s %v), want a new one", st.Process.ConfigVersion, info, r.p.metric(t, info))
	}
	for _, w := range []string{"a=40/ready", "b=100/ready", "e=60/ready", "u=70/ready",
		fmt.Sprintf("tcp_%d port %d running: e=60", added, added), fmt.Sprintf("http_%d port %d running: a=40/ready b=100", held, held)} {
		if !strings.Contains(after, w) {
			t.Errorf("after the reload with the port free, lacks %q:\n%s", w, after)
		}
	}
	served, err := getOK(httpClient(t, &http.Transport{DisableKeepAlives: true}), fmt.Sprintf("http://127.0.0.1:%d/", held))
	if err != nil {
		t.Errorf("the listener added on the freed port: %v", err)
	}
	if _, err := echo(fmt.Sprintf("127.0.0.1:%d", added)); err != nil {
		t.Errorf("the tcp listener added: %v", err)
	}
	ld.stop()
	if ld.failed() != 0 {
		t.Errorf("requests failed: %s", ld.errors())
	}
	Record(t, "clb binary with http, tcp and udp listeners, under 2 HTTP keep-alive and 2 new-connection clients, a TCP stream and a UDP flow echoing; "+
		"the file rewritten to change every listener's weights and add a tcp listener and an http listener on a port held by another process; SIGHUP, then PUT /api/config with a token; then the holder exits and SIGHUP again",
		"%d requests, %d failed (%s); %d during the two refusals; SIGHUP → \"reload refused\" logged in %v, PUT answered 409 in %v, both naming %q; "+
			"after each, every listener's weights, states and ports as before (/status.json), %s still 1 (file mode counts no refusal: clb_config_refused_total is the etcd source's), the added tcp port not listening; "+
			"port freed: SIGHUP → \"reloaded\" in %v, the new listeners serving (http on the freed port answered %q)",
		ld.sent(), ld.failed(), ld, duringRefusals, refusedIn.Round(time.Microsecond), putIn.Round(time.Microsecond), want, info, appliedIn.Round(time.Microsecond), served)
}
