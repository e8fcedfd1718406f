package reliability

import (
	"context"
	"encoding/base64"
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
	"github.com/lbkit/lbkit/internal/proctest"
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

// newOpsRig starts the backends and a clb with -admin-tokens on
// opsConfig at weights 100.
func newOpsRig(t *testing.T) *opsRig {
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
	if err := os.WriteFile(r.path, []byte(r.config("100", "100", "100", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	r.p = startCLB(t, "-config", r.path, "-admin-tokens", writeTokens(t))
	return r
}

// writeTokens writes an admin token file holding opsToken, named ops,
// and returns its path.
func writeTokens(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("ops:"+opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
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

	held, release := proctest.HoldPort(t)
	added := freePort(t)
	changed := r.config("40", "60", "70", fmt.Sprintf(
		"  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: echo, HealthCheck: \"off\"}\n"+
			"  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", added, held))
	if err := os.WriteFile(r.path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("listener http_%d (http port %d): listen tcp 127.0.0.1:%d: bind: address already in use", held, held, held)
	refusals := 0
	unchanged := func(how string) {
		t.Helper()
		refusals++
		if v := r.p.metric(t, "clb_reloads_refused_total", ""); v != float64(refusals) {
			t.Errorf("after the refused reload by %s: clb_reloads_refused_total %v, want %d", how, v, refusals)
		}
		ld.after(t, 200)
		st := r.p.status(t, "")
		if got := shape(st); got != before {
			t.Errorf("after the refused reload by %s:\n%s\nwant as before:\n%s", how, got, before)
		}
		if st.Process.ConfigVersion != version {
			t.Errorf("after the refused reload by %s: config version %s, want %s", how, st.Process.ConfigVersion, version)
		}
		if v := r.p.metric(t, info, ""); v != 1 {
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
	if st.Process.ConfigVersion == version || r.p.metric(t, info, "") != 0 {
		t.Errorf("after the reload with the port free, config version %s (%s %v), want a new one", st.Process.ConfigVersion, info, r.p.metric(t, info, ""))
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
	Record(t, "Reload with a failing bind: clb binary with http, tcp and udp listeners, under 2 HTTP keep-alive and 2 new-connection clients, a TCP stream and a UDP flow echoing; "+
		"the file rewritten to change every listener's weights and add a tcp listener and an http listener on a port held by another process; SIGHUP, then PUT /api/config with a token; then the holder exits and SIGHUP again",
		"%d requests, %d failed (%s); %d during the two refusals; SIGHUP → \"reload refused\" logged in %v, PUT answered 409 in %v, both naming %q; "+
			"after each, every listener's weights, states and ports as before (/status.json), %s still 1, clb_reloads_refused_total 1 then 2, the added tcp port not listening; "+
			"port freed: SIGHUP → \"reloaded\" in %v, the new listeners serving (http on the freed port answered %q)",
		ld.sent(), ld.failed(), ld, duringRefusals, refusedIn.Round(time.Microsecond), putIn.Round(time.Microsecond), want, info, appliedIn.Round(time.Microsecond), served)
}

// A credential that is not a valid bearer token in the Authorization
// header, and the reason clb_admin_refused_total counts its refusal
// under.
type badCredential struct {
	name, auth, query, reason string
}

var badCredentials = []badCredential{
	{"no credential", "", "", "missing_token"},
	{"a wrong token of the right length", "Bearer " + strings.Repeat("x", len(opsToken)), "", "bad_token"},
	{"the token and one byte more", "Bearer " + opsToken + "0", "", "bad_token"},
	{"the token less its last byte", "Bearer " + opsToken[:len(opsToken)-1], "", "bad_token"},
	{"Basic auth with the token as password", "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+opsToken)), "", "missing_token"},
	{"the token in the query string", "", "?token=" + opsToken + "&access_token=" + opsToken, "missing_token"},
}

// refusals counts refused admin requests by status and by the reason
// the admin server counted.
type refusals struct {
	codes   map[int]int
	reasons map[string]int
}

// try sends a request that must be refused with want, whose body must
// be one line, and counts it.
func (rf *refusals) try(t *testing.T, addr, method, path, auth, body string, want int, reason string) {
	t.Helper()
	code, got := adminDoAt(t, addr, method, path, auth, body)
	if rf.codes == nil {
		rf.codes, rf.reasons = map[int]int{}, map[string]int{}
	}
	rf.codes[code]++
	rf.reasons[reason]++
	if code != want {
		t.Errorf("%s %s with %q: %d %q, want %d", method, path, auth, code, got, want)
	}
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("%s %s with %q: body %q is not one line", method, path, auth, got)
	}
}

// refusedTotals reads p's clb_admin_refused_total by reason, with auth.
func refusedTotals(t *testing.T, p *clbProc, auth string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, reason := range []string{"missing_token", "bad_token", "no_tokens"} {
		m[reason] = p.metric(t, fmt.Sprintf("clb_admin_refused_total{reason=%q}", reason), auth)
	}
	return m
}

// counted checks that p's clb_admin_refused_total rose from before by
// the refusals tried on p, reason by reason.
func (rf *refusals) counted(t *testing.T, p *clbProc, auth string, before map[string]float64) {
	t.Helper()
	after := refusedTotals(t, p, auth)
	for reason := range after {
		if d := after[reason] - before[reason]; d != float64(rf.reasons[reason]) {
			t.Errorf("%s: clb_admin_refused_total{reason=%q} rose by %v, want %d", p.admin, reason, d, rf.reasons[reason])
		}
	}
}

// add adds o's counts to rf's.
func (rf *refusals) add(o *refusals) {
	for code, n := range o.codes {
		rf.codes[code] += n
	}
	for reason, n := range o.reasons {
		rf.reasons[reason] += n
	}
}

// writeRoutes is every write of the runtime API on listeners web (with
// backend a) and tcp; config is the body of PUT /api/config.
func writeRoutes(web, tcp, config string) []struct{ method, path, body string } {
	b := "/api/listeners/" + web + "/backends/a/"
	return []struct{ method, path, body string }{
		{"POST", b + "weight", `{"weight": 1}`},
		{"POST", b + "state", `{"state": "drain"}`},
		{"POST", b + "state", `{"state": "maint"}`},
		{"POST", b + "state", `{"state": "ready"}`},
		{"POST", "/api/listeners/" + tcp + "/stop", ""},
		{"POST", "/api/listeners/" + tcp + "/start", ""},
		{"PUT", "/api/config", config},
	}
}

// nonLoopbackIP returns an IPv4 address of this machine, not a loopback
// one, that a server can listen on; "" if there is none.
func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if ln, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0")); err == nil {
			ln.Close()
			return n.IP.String()
		}
	}
	return ""
}

// Every write of the runtime API is refused without a valid bearer
// token, whatever else the request carries, and a GET on a write route
// changes nothing; without a token file every write is refused; reads
// on a non-loopback admin address need the token. Each refusal is 401
// or 403 with a one-line body, counted by reason; nothing changes and
// nothing is logged as a change. Then one write with the token succeeds.
func TestAdminUnauthenticatedWrites(t *testing.T) {
	leakcheck.Check(t)
	r := newOpsRig(t)
	st := r.p.status(t, "")
	web, tcp := st.Listeners[0].Name, st.Listeners[1].Name
	if !strings.HasPrefix(web, "http_") || !strings.HasPrefix(tcp, "tcp_") {
		t.Fatalf("listeners %s, %s: want http_N, tcp_N", web, tcp)
	}
	before, version := shape(st), st.Process.ConfigVersion
	_, configBefore := r.p.adminDo(t, "GET", "/api/config", "", "")
	totalsBefore := refusedTotals(t, r.p, "")
	routes := writeRoutes(web, tcp, r.config("1", "1", "1", ""))

	var rf refusals
	for _, rt := range routes {
		for _, c := range badCredentials {
			rf.try(t, r.p.admin, rt.method, rt.path+c.query, c.auth, rt.body, http.StatusUnauthorized, c.reason)
		}
	}
	// A GET on a write route, even with the token, is not that write.
	gets := 0
	for _, rt := range routes {
		if rt.method == "PUT" { // GET /api/config is the read of the configuration
			continue
		}
		for _, auth := range []string{"", "Bearer " + opsToken} {
			gets++
			if code, body := r.p.adminDo(t, "GET", rt.path, auth, ""); code != http.StatusMethodNotAllowed {
				t.Errorf("GET %s with %q: %d %q, want 405", rt.path, auth, code, body)
			}
		}
	}

	st = r.p.status(t, "")
	if got := shape(st); got != before {
		t.Errorf("after the refused writes:\n%s\nwant as before:\n%s", got, before)
	}
	if _, got := r.p.adminDo(t, "GET", "/api/config", "", ""); got != configBefore || st.Process.ConfigVersion != version {
		t.Errorf("after the refused writes, the configuration changed (version %s, was %s):\n%s", st.Process.ConfigVersion, version, got)
	}
	rf.counted(t, r.p, "", totalsBefore)
	if n := len(r.p.log.lines("admin change")); n != 0 {
		t.Errorf("%d \"admin change\" lines logged for refused writes", n)
	}
	logged := len(r.p.log.lines("admin request refused"))
	first := rf.codes[http.StatusUnauthorized]
	if logged != first {
		t.Errorf("%d \"admin request refused\" lines for %d refusals", logged, first)
	}

	// Without a token file, the token is no credential: every write 403.
	none := startCLB(t, "-config", r.path, "-admin", "127.0.0.1:0", "-listen-address", "127.0.0.2")
	var rfNone refusals
	noneBefore := refusedTotals(t, none, "")
	for _, rt := range routes {
		rfNone.try(t, none.admin, rt.method, rt.path, "Bearer "+opsToken, rt.body, http.StatusForbidden, "no_tokens")
	}
	rfNone.counted(t, none, "", noneBefore)
	rf.add(&rfNone)
	noneShape := shape(none.status(t, ""))

	// Reads need the token on a non-loopback admin address.
	reads := "skipped: this machine has no non-loopback IPv4 address"
	if ip := nonLoopbackIP(); ip != "" {
		far := startCLB(t, "-config", r.path, "-admin", net.JoinHostPort(ip, "0"), "-listen-address", "127.0.0.3", "-admin-tokens", writeTokens(t))
		var rfFar refusals
		token := "Bearer " + opsToken
		farBefore := refusedTotals(t, far, token)
		n := 0
		for _, path := range []string{"/status.json", "/metrics", "/api/config", "/"} {
			for _, c := range badCredentials {
				rfFar.try(t, far.admin, "GET", path+c.query, c.auth, "", http.StatusUnauthorized, c.reason)
				n++
			}
			if code, body := adminDoAt(t, far.admin, "GET", path, "Bearer "+opsToken, ""); code != http.StatusOK {
				t.Errorf("GET %s on %s with the token: %d %q, want 200", path, far.admin, code, body)
			}
		}
		rfFar.counted(t, far, token, farBefore)
		rf.add(&rfFar)
		reads = fmt.Sprintf("admin on %s: %d reads of /status.json, /metrics, /api/config and / without a valid token refused 401, the same 4 with it 200", ip, n)
	} else {
		t.Log(reads)
	}
	if n := len(none.log.lines("admin change")); n != 0 {
		t.Errorf("%d \"admin change\" lines logged by the clb without tokens", n)
	}
	if got := shape(none.status(t, "")); got != noneShape {
		t.Errorf("the clb without tokens changed:\n%s\nwas:\n%s", got, noneShape)
	}

	// The token does what nothing else did.
	code, body := r.p.adminDo(t, "POST", routes[0].path, "Bearer "+opsToken, `{"weight": 7}`)
	if code != http.StatusOK || !strings.Contains(body, `"before":"100","after":"7"`) {
		t.Errorf("the write with the token: %d %q, want 200 100 → 7", code, body)
	}
	if got := shape(r.p.status(t, "")); !strings.Contains(got, "a=7/ready") {
		t.Errorf("after the write with the token: %s", got)
	}
	if n := len(r.p.log.lines("admin change")); n != 1 {
		t.Errorf("%d \"admin change\" lines after the write with the token, want 1", n)
	}
	attempts := 0
	for _, n := range rf.codes {
		attempts += n
	}
	Record(t, fmt.Sprintf("Unauthenticated writes: clb binary with -admin-tokens, admin on 127.0.0.1: each of the %d writes (weight; state drain, maint, ready; listener stop, start; PUT /api/config) tried with: %s; a GET on each write route, without and with the token; "+
		"the same writes with the token on a clb without -admin-tokens; reads on a non-loopback admin address; then one write with the token", len(routes), credentialNames()),
		"%d refused attempts: %d×401, %d×403, every body one line; each process's clb_admin_refused_total rose by exactly its attempts (%s); %d GETs on write routes 405; the first clb logged %d \"admin request refused\" lines for its %d refusals and 0 \"admin change\"; "+
			"weights, states, listeners (/status.json) and GET /api/config identical before and after; %s; the write with the token: 200, weight 100 → 7, one audit line",
		attempts, rf.codes[401], rf.codes[403], reasonCounts(rf.reasons), gets, logged, first, reads)
}

func credentialNames() string {
	var s []string
	for _, c := range badCredentials {
		s = append(s, c.name)
	}
	return strings.Join(s, ", ")
}

func reasonCounts(m map[string]int) string {
	var s []string
	for _, reason := range []string{"missing_token", "bad_token", "no_tokens"} {
		s = append(s, fmt.Sprintf("%s +%d", reason, m[reason]))
	}
	return strings.Join(s, ", ")
}
