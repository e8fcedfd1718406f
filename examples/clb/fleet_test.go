package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/netx"
)

func TestFleetConfigErrors(t *testing.T) {
	key16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	key32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name, fleet, want string
	}{
		{"cookie key not base64", "CookieKey: '%%%'", "t.yaml:2: Fleet.CookieKey: not base64 (standard, padded): illegal base64 data at input byte 0"},
		{"cookie key short", "CookieKey: " + base64.StdEncoding.EncodeToString(make([]byte, 15)), "t.yaml:2: Fleet.CookieKey: 15 bytes, want at least 16"},
		{"previous cookie key short", "CookieKey: " + key16 + "\n  PreviousCookieKey: AAAA", "t.yaml:3: Fleet.PreviousCookieKey: 3 bytes, want at least 16"},
		{"sticky without cookie key", "SessionTicketKeys: [" + key32 + "]", "t.yaml:2: Fleet.CookieKey: required: Listeners[0] has StickySession on, and a per-process key would not be honoured by the other replicas"},
		{"ticket key length", "CookieKey: " + key16 + "\n  SessionTicketKeys: [" + key16 + "]", "t.yaml:3: Fleet.SessionTicketKeys[0]: 16 bytes, want 32"},
		{"quic-lb key length", "CookieKey: " + key16 + "\n  QuicLb: {Key: " + key32 + "}", "t.yaml:3: Fleet.QuicLb.Key: 32 bytes, want 16"},
		{"quic-lb config id", "CookieKey: " + key16 + "\n  QuicLb: {ConfigId: 7}", "t.yaml:3: Fleet.QuicLb.ConfigId: 7: codepoint 7 is reserved for unroutable connection IDs; range 0–6"},
		{"quic-lb unknown server", "CookieKey: " + key16 + "\n  QuicLb: {ServerIds: [{ServerId: nobody, Id: '0a01'}]}", `t.yaml:3: Fleet.QuicLb.ServerIds[0].ServerId: "nobody": no such server in any group`},
		{"quic-lb id length", "CookieKey: " + key16 + "\n  QuicLb: {ServerIds: [{ServerId: a, Id: '0a'}]}", `t.yaml:3: Fleet.QuicLb.ServerIds: "0a": length 1 octets, want the decoder's ServerIDLen 2`},
		{"quic-lb id twice", "CookieKey: " + key16 + "\n  QuicLb: {ServerIds: [{ServerId: a, Id: '0a01'}, {ServerId: b, Id: '0a:01'}]}", `t.yaml:3: Fleet.QuicLb.ServerIds[1].Id: "0a:01" already given to "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := "Fleet:\n  " + tt.fleet + `
BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1}
  - {ServerId: b, ServerIp: 127.0.0.2}
Listeners:
  - {ListenerProtocol: http, ListenerPort: 8080, BackendServerPort: 80, StickySession: "on", StickySessionType: insert, CookieTimeout: 60}
`
			f, err := Parse("t.yaml", ".", []byte(data))
			if err == nil {
				_, err = planFile(f, testEnv(t))
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}

// The Fleet block reaches the listeners: the service address, the
// session-ticket keys, the cookie key, and a QUIC-LB router that sends a
// connection ID a backend's generator issued to that backend.
func TestFleetPlan(t *testing.T) {
	cookie := []byte("0123456789abcdef0123")
	qkey := []byte("fedcba9876543210")
	data := fmt.Sprintf(`Address: 192.0.2.10
Fleet:
  CookieKey: %s
  SessionTicketKeys: [%s]
  QuicLb: {ConfigId: 2, Key: %s, ServerIds: [{ServerId: a, Id: "0a01"}, {ServerId: b, Id: "0b02"}]}
BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1}
  - {ServerId: b, ServerIp: 127.0.0.2}
Listeners:
  - {ListenerProtocol: udp, ListenerPort: 4433, BackendServerPort: 4433, Scheduler: qch, HealthCheck: "off"}
  - {ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80, Scheduler: tch, HealthCheck: "off"}
  - {ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: demo, StickySession: "on", StickySessionType: insert, CookieTimeout: 60, HealthCheck: "off"}
`, base64.StdEncoding.EncodeToString(cookie), base64.StdEncoding.EncodeToString(make([]byte, 32)), base64.StdEncoding.EncodeToString(qkey))
	_, p := mustPlan(t, "t.yaml", data)
	udp, tcp, https := p.listeners[0].cfg, p.listeners[1].cfg, p.listeners[2].cfg
	if got, want := tcp.ServiceAddr, netip.MustParseAddrPort("192.0.2.10:9000"); got != want {
		t.Errorf("tcp ServiceAddr = %v, want %v", got, want)
	}
	if got := https.HTTP.SessionTicketKeys; len(got) != 1 || got[0] != [32]byte{} {
		t.Errorf("https SessionTicketKeys = %v, want the one configured", got)
	}
	if got := https.HTTP.StickySession.Key; string(got) != string(cookie) {
		t.Errorf("cookie key = %q, want the configured %q", got, cookie)
	}
	if udp.QUICRouter == nil {
		t.Fatal("qch listener has no QUIC-LB router")
	}
	qcfg := quiclb.Config{ConfigID: 2, Key: qkey}
	for _, s := range []struct{ id, backend string }{{"0a01", "a"}, {"0b02", "b"}} {
		if got, ok := udp.QUICRouter.Route(mustCID(t, qcfg, s.id)); !ok || got != s.backend {
			t.Errorf("Route(cid of server %s) = %q, %v; want %q", s.id, got, ok, s.backend)
		}
	}
	if want := len(mustCID(t, qcfg, "0a01")); udp.QUICConnIDLength != want {
		t.Errorf("QUICConnIDLength = %d, want the QUIC-LB connection ID length %d", udp.QUICConnIDLength, want)
	}
	// Without Address, each replica hashes its local address.
	_, p = mustPlan(t, "t.yaml", strings.Replace(data, "Address: 192.0.2.10\n", "", 1))
	if got := p.listeners[1].cfg.ServiceAddr; got.IsValid() {
		t.Errorf("without Address, ServiceAddr = %v, want none", got)
	}
}

// mustCID returns a connection ID the server with ID id (hex) issues
// under cfg.
func mustCID(t *testing.T, cfg quiclb.Config, id string) []byte {
	t.Helper()
	sid, _ := quiclb.ParseServerID(id)
	gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: cfg, ServerID: sid})
	if err != nil {
		t.Fatal(err)
	}
	cid, err := gen.GenerateConnectionID()
	if err != nil {
		t.Fatal(err)
	}
	return cid.Bytes()
}

// fleetConfig is the one file three replicas run. Ports and servers are
// filled in by the test.
const fleetConfig = `LoadBalancerId: lb-fleet
Address: 192.0.2.10
ListenAddress: 127.0.0.1
Fleet:
  CookieKey: COOKIEKEY
  SessionTicketKeys: [TICKETKEY]
ServerCertificates:
  - {ServerCertificateId: www, CertificateFile: www.pem, PrivateKeyFile: www-key.pem}
VServerGroups:
  - VServerGroupId: tcp
    BackendServers:
TCPSERVERS
  - VServerGroupId: web
    BackendServers:
WEBSERVERS
Listeners:
  - {ListenerProtocol: tcp, ListenerPort: SCH, VServerGroupId: tcp, Scheduler: sch, HealthCheck: "off"}
  - {ListenerProtocol: tcp, ListenerPort: TCH, VServerGroupId: tcp, Scheduler: tch, HealthCheck: "off"}
  - {ListenerProtocol: http, ListenerPort: HASH, VServerGroupId: web, Scheduler: hash, HashBy: header, HashKey: X-User, HealthCheck: "off"}
  - {ListenerProtocol: http, ListenerPort: COOKIE, VServerGroupId: web, Scheduler: wrr, StickySession: "on", StickySessionType: insert, CookieTimeout: 3600, HealthCheck: "off"}
  - {ListenerProtocol: https, ListenerPort: HTTPS, VServerGroupId: web, Scheduler: wrr, ServerCertificateId: www, HealthCheck: "off"}
`

// fleetBackend is one backend server: a TCP server that greets with its
// name and closes, and an HTTP server that answers with its name.
type fleetBackend struct {
	name     string
	tcp, web net.Listener
	srv      *http.Server
	wg       sync.WaitGroup
}

func startFleetBackend(t *testing.T, name string) *fleetBackend {
	t.Helper()
	b := &fleetBackend{name: name}
	var err error
	if b.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if b.web, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	b.wg.Go(func() {
		for {
			c, err := b.tcp.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, name+"\n")
			c.Close()
		}
	})
	b.srv = &http.Server{Handler: nameHandler(name), ReadHeaderTimeout: 10 * time.Second}
	b.wg.Go(func() { b.srv.Serve(b.web) })
	t.Cleanup(func() {
		b.tcp.Close()
		b.srv.Close()
		b.wg.Wait()
	})
	return b
}

func portOfListener(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// fleetPorts returns n TCP ports free on each of the replicas' addresses.
func fleetPorts(t *testing.T, hosts []string, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		ln, err := net.Listen("tcp", hosts[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := portOfListener(ln)
		free := true
		for _, h := range hosts[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			l2.Close()
		}
		ln.Close()
		if free && port < 60000 {
			ports = append(ports, port)
		}
	}
	return ports
}

// Three clb processes run one configuration file, each on its own
// address (-listen-address) with its own admin server (-admin). Every
// key — a source IP for sch, a four-tuple for tch, an X-User header for
// hash, a SERVERID cookie — lands on the same backend whichever replica
// it reaches, a TLS session made on one replica resumes on another, and
// when a backend leaves (the file rewritten, SIGHUP to each), the keys
// that move are the same on every replica and few.
func TestFleetThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three clb processes and sends about 40,000 flows")
	}
	leakcheck.Check(t)
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	dir := t.TempDir()
	env := testEnv(t)
	writePEM(t, filepath.Join(dir, "www.pem"), "CERTIFICATE", env.demoCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(env.demoCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "www-key.pem"), "PRIVATE KEY", keyDER)
	roots := x509.NewCertPool()
	roots.AddCert(env.demoCert.Leaf)

	names := []string{"backend-a", "backend-b", "backend-c", "backend-d", "backend-e"}
	backends := map[string]*fleetBackend{}
	for _, n := range names {
		backends[n] = startFleetBackend(t, n)
	}
	ports := fleetPorts(t, hosts, 6)
	sch, tch, hash, cookie, https, adminPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	path := filepath.Join(dir, "lb.yaml")
	write := func(members []string) {
		t.Helper()
		var tcpS, webS strings.Builder
		for _, n := range members {
			b := backends[n]
			fmt.Fprintf(&tcpS, "      - {ServerId: %s, ServerIp: 127.0.0.1, Port: %d}\n", n, portOfListener(b.tcp))
			fmt.Fprintf(&webS, "      - {ServerId: %s, ServerIp: 127.0.0.1, Port: %d}\n", n, portOfListener(b.web))
		}
		cfg := strings.NewReplacer(
			"COOKIEKEY", base64.StdEncoding.EncodeToString([]byte("fleet cookie key, 32 bytes long!")),
			"TICKETKEY", base64.StdEncoding.EncodeToString([]byte("fleet session ticket key 32bytes")),
			"TCPSERVERS\n", tcpS.String(), "WEBSERVERS\n", webS.String(),
			"SCH", strconv.Itoa(sch), "TCH", strconv.Itoa(tch), "HASH", strconv.Itoa(hash),
			"COOKIE,", strconv.Itoa(cookie)+",", "HTTPS,", strconv.Itoa(https)+",",
		).Replace(fleetConfig)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(names)
	var procs []*proc
	for _, h := range hosts {
		p := startClb(t, "-config", path, "-listen-address", h, "-admin", net.JoinHostPort(h, strconv.Itoa(adminPort)), "-access-log=false")
		procs = append(procs, p)
		if !strings.Contains(p.stdout, net.JoinHostPort(h, strconv.Itoa(sch))) {
			t.Fatalf("replica on %s does not list its own address:\n%s", h, p.stdout)
		}
		resp, err := http.Get("http://" + net.JoinHostPort(h, strconv.Itoa(adminPort)) + "/status.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("admin of %s: %d", h, resp.StatusCode)
		}
	}
	defer func() {
		for _, p := range procs {
			p.stop(t)
		}
	}()
	rng := rand.New(rand.NewPCG(17, 1))

	// sch: 2,000 source IPs, 10,000 flows to random replicas.
	var srcIPs []netip.Addr
	for i := range 2000 {
		srcIPs = append(srcIPs, netip.AddrFrom4([4]byte{127, 10, byte(i >> 8), byte(i)}))
	}
	schKeys := make([]string, len(srcIPs))
	for i, ip := range srcIPs {
		schKeys[i] = ip.String()
	}
	schSend := func(key string, replica int) string {
		return tcpName(t, netip.AddrPortFrom(netip.MustParseAddr(key), 0), net.JoinHostPort(hosts[replica], strconv.Itoa(sch)))
	}
	schBefore := agree(t, "sch", schKeys, 10_000, rng, schSend)

	// tch: 1,000 four-tuples, each sent to every replica.
	var tchKeys []string
	for i := range 1000 {
		tchKeys = append(tchKeys, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 11, byte(i >> 8), byte(i)}), uint16(20000+i)).String())
	}
	tchSend := func(key string, replica int) string {
		return tcpName(t, netip.MustParseAddrPort(key), net.JoinHostPort(hosts[replica], strconv.Itoa(tch)))
	}
	agreeAll(t, "tch", tchKeys, tchSend)

	// hash by header: 2,000 users, 10,000 requests to random replicas.
	var users []string
	for i := range 2000 {
		users = append(users, fmt.Sprintf("user-%d", i))
	}
	clients := make([]*http.Client, len(hosts))
	for i := range clients {
		clients[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		defer clients[i].CloseIdleConnections()
	}
	hashSend := func(user string, replica int) string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(hosts[replica], strconv.Itoa(hash))+"/", nil)
		req.Header.Set("X-User", user)
		name, _ := doName(t, clients[replica], req)
		return name
	}
	hashBefore := agree(t, "hash", users, 10_000, rng, hashSend)

	// Cookies: minted by replica 1, honoured by 2 and 3; without the
	// cookie wrr spreads, so agreement is the cookie's doing.
	spread := map[string]int{}
	for i := range 300 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(hosts[0], strconv.Itoa(cookie))+"/", nil)
		first, resp := doName(t, clients[0], req)
		c := resp.Cookies()
		if len(c) == 0 {
			t.Fatalf("client %d: replica 1 set no cookie", i)
		}
		spread[first]++
		for r := 1; r < len(hosts); r++ {
			req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(hosts[r], strconv.Itoa(cookie))+"/", nil)
			req.AddCookie(c[0])
			if got, _ := doName(t, clients[r], req); got != first {
				t.Fatalf("client %d: cookie minted by replica 1 for %s took replica %d to %s", i, first, r+1, got)
			}
		}
	}
	if len(spread) < len(names) {
		t.Errorf("300 first requests reached %v, want every backend", spread)
	}

	// TLS: a session made on one replica resumes on the next, and the
	// ticket each resumption brings resumes on the one after (1→2→3→1→2).
	cache := tls.NewLRUClientSessionCache(4)
	if resumed(t, roots, cache, hosts[0], https) {
		t.Fatal("replica 1: a fresh client resumed")
	}
	for i := 1; i <= len(hosts)+1; i++ {
		if r := i % len(hosts); !resumed(t, roots, cache, hosts[r], https) {
			t.Errorf("hop %d: the session did not resume on replica %d", i, r+1)
		}
	}

	// backend-c leaves: the same file on every replica, SIGHUP to each.
	const leaver = "backend-c"
	var rest []string
	for _, n := range names {
		if n != leaver {
			rest = append(rest, n)
		}
	}
	write(rest)
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGHUP)
	}
	for _, p := range procs {
		waitLog(t, p, "msg=reloaded", 1)
	}
	moved(t, "sch", schBefore, leaver, agreeAll(t, "sch after leave", schKeys, schSend))
	moved(t, "hash", hashBefore, leaver, agreeAll(t, "hash after leave", users, hashSend))
}

// agree sends n flows, each a random key to a random replica, 16 at a
// time, and fails unless every key landed on one backend; it returns
// each key's backend.
func agree(t *testing.T, what string, keys []string, n int, rng *rand.Rand, send func(key string, replica int) string) map[string]string {
	t.Helper()
	type flow struct{ key, replica int }
	flows := make([]flow, n)
	for i := range flows {
		flows[i] = flow{rng.IntN(len(keys)), rng.IntN(3)}
	}
	got := make([]string, n)
	parallel(len(flows), func(i int) { got[i] = send(keys[flows[i].key], flows[i].replica) })
	where := map[string]string{}
	perReplica := [3]int{}
	for i, f := range flows {
		k := keys[f.key]
		perReplica[f.replica]++
		if prev, ok := where[k]; ok && prev != got[i] {
			t.Fatalf("%s: key %s went to %s and to %s (replica %d)", what, k, prev, got[i], f.replica+1)
		}
		where[k] = got[i]
	}
	t.Logf("%s: %d flows (%v per replica) over %d keys: each key on one backend", what, n, perReplica, len(where))
	return where
}

// agreeAll sends every key to every replica and fails unless the
// replicas agree; it returns each key's backend.
func agreeAll(t *testing.T, what string, keys []string, send func(key string, replica int) string) map[string]string {
	t.Helper()
	got := make([]string, 3*len(keys))
	parallel(len(got), func(i int) { got[i] = send(keys[i/3], i%3) })
	where := map[string]string{}
	for i, k := range keys {
		if got[3*i] != got[3*i+1] || got[3*i] != got[3*i+2] {
			t.Fatalf("%s: key %s went to %s, %s and %s on replicas 1, 2, 3", what, k, got[3*i], got[3*i+1], got[3*i+2])
		}
		where[k] = got[3*i]
	}
	t.Logf("%s: %d keys × 3 replicas: every replica agrees", what, len(keys))
	return where
}

// moved checks the keys that changed backend when leaver left: every key
// of the leaver, and at most 1.6 times as many keys in all.
func moved(t *testing.T, what string, before map[string]string, leaver string, after map[string]string) {
	t.Helper()
	var lost, changed int
	for k, b := range before {
		if b == leaver {
			lost++
		}
		if after[k] == leaver {
			t.Errorf("%s: key %s still on %s after it left", what, k, leaver)
		}
		if after[k] != b {
			changed++
		}
	}
	ratio := float64(changed) / float64(lost)
	t.Logf("%s: %s had %d of %d keys (%.1f%%); %d keys moved, %.3f× its share", what, leaver, lost, len(before), 100*float64(lost)/float64(len(before)), changed, ratio)
	if lost == 0 || ratio > 1.6 {
		t.Errorf("%s: %d keys moved for the %d of %s: ratio %.3f, want ≤ 1.6", what, changed, lost, leaver, ratio)
	}
}

// parallel runs f(0..n-1) on 16 goroutines.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// tcpName connects from src through addr and returns the name the
// backend greets with.
func tcpName(t *testing.T, src netip.AddrPort, addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := netx.DialFrom(ctx, src, addr)
	if err != nil {
		t.Errorf("dial %s from %v: %v", addr, src, err)
		return "error"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Errorf("greeting via %s from %v: %v", addr, src, err)
		return "error"
	}
	return strings.TrimSpace(name)
}

// doName sends req and returns the backend's name, the first line of the
// answer.
func doName(t *testing.T, c *http.Client, req *http.Request) (string, *http.Response) {
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return "error", &http.Response{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	name, _, _ := strings.Cut(string(body), "\n")
	if resp.StatusCode != 200 || !strings.HasPrefix(name, "backend-") {
		t.Errorf("%s %s: %d %q", req.Method, req.URL, resp.StatusCode, body)
	}
	return name, resp
}

// resumed makes one HTTPS request to host:port with the session cache and
// reports whether the TLS session was resumed.
func resumed(t *testing.T, roots *x509.CertPool, cache tls.ClientSessionCache, host string, port int) bool {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: cache}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	resp, err := c.Get("https://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.TLS.DidResume
}

// A reload applies the Fleet block: session-ticket keys and QUIC-LB
// server IDs live, on the running listeners; a new cookie key or QUIC-LB
// configuration by replacing the listeners that use it, and only those.
func TestFleetReload(t *testing.T) {
	leakcheck.Check(t)
	ports := fleetPorts(t, []string{"127.0.0.1"}, 3)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	conf := func(cookie, ticket, qkey, id string) string {
		return fmt.Sprintf(`Fleet:
  CookieKey: %s
  SessionTicketKeys: [%s]
  QuicLb: {Key: %s, ServerIds: [{ServerId: a, Id: "%s"}]}
BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1}
Listeners:
  - {ListenerProtocol: http, ListenerPort: %d, BackendServerPort: 80, StickySession: "on", StickySessionType: insert, CookieTimeout: 60, HealthCheck: "off"}
  - {ListenerProtocol: https, ListenerPort: %d, BackendServerPort: 80, ServerCertificateId: demo, HealthCheck: "off"}
  - {ListenerProtocol: udp, ListenerPort: %d, BackendServerPort: 4433, Scheduler: qch, HealthCheck: "off"}
`, b64(cookie), b64(ticket), b64(qkey), id, ports[0], ports[1], ports[2])
	}
	e := testEnv(t)
	_, p := mustPlan(t, "t.yaml", conf("cookie key one..", "ticket key one, thirty-two bytes", "quic-lb key one.", "0a01"))
	a, err := start(p, e)
	if err != nil {
		t.Fatal(err)
	}
	defer a.stop(context.Background())
	names := []string{p.listeners[0].name, p.listeners[1].name, p.listeners[2].name}
	router := p.listeners[2].cfg.QUICRouter // the one the udp listener runs with
	steps := []struct {
		name                     string
		cookie, ticket, qkey, id string
		replaced                 []bool // http, https, udp
	}{
		{"ticket key and server ID: live", "cookie key one..", "ticket key two, thirty-two bytes", "quic-lb key one.", "0b02", []bool{false, false, false}},
		{"cookie key: the sticky listener", "cookie key two..", "ticket key two, thirty-two bytes", "quic-lb key one.", "0b02", []bool{true, false, false}},
		{"quic-lb key: the qch listener", "cookie key two..", "ticket key two, thirty-two bytes", "quic-lb key two.", "0b02", []bool{false, false, true}},
	}
	for _, s := range steps {
		before := map[string]*running{}
		for _, n := range names {
			before[n] = a.running[n]
		}
		_, np := mustPlan(t, "t.yaml", conf(s.cookie, s.ticket, s.qkey, s.id))
		if err := a.reload(np); err != nil {
			t.Fatalf("%s: reload: %v", s.name, err)
		}
		for i, n := range names {
			if got := a.running[n].l != before[n].l; got != s.replaced[i] {
				t.Errorf("%s: %s replaced = %v, want %v", s.name, n, got, s.replaced[i])
			}
		}
		if s.replaced[2] {
			router = np.listeners[2].cfg.QUICRouter
		}
		cid := mustCID(t, quiclb.Config{Key: []byte(s.qkey)}, s.id)
		if got, ok := router.Route(cid); !ok || got != "a" {
			t.Errorf("%s: the running router routes server %s to %q, %v; want a", s.name, s.id, got, ok)
		}
	}
}
