package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// replica is one clb of the fleet: its process, the IP its listeners
// bind and its admin address.
type replica struct {
	*proc
	ip, admin string
}

var adminLine = regexp.MustCompile(`Admin: http://([^/]+)/`)

// asReplica is the running clb p, its listeners on ip, with the admin
// address it printed.
func asReplica(t *testing.T, p *proc, ip string) *replica {
	t.Helper()
	m := adminLine.FindStringSubmatch(p.stdout)
	if m == nil {
		t.Fatalf("no admin address in:\n%s", p.stdout)
	}
	return &replica{proc: p, ip: ip, admin: m[1]}
}

// status fetches the replica's /status.json.
func (r *replica) status(t *testing.T) admin.Status {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Config == nil {
		t.Fatalf("status.json: %v, config %v", err, st.Config)
	}
	return st
}

// fleet is three replicas following one etcd prefix.
type fleet []*replica

// waitAll polls every replica's status until ok holds for each, and
// returns how long that took; it fails the test after 20 s.
func (f fleet) waitAll(t *testing.T, what string, ok func(admin.Status) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for _, r := range f {
		for !ok(r.status(t)) {
			if time.Since(start) > 20*time.Second {
				t.Fatalf("replica %s: not %s after 20s; status %+v\nstderr:\n%s", r.ip, what, r.status(t).Config, r.stderr)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// applied waits until every replica runs revision rev or later.
func (f fleet) applied(t *testing.T, rev int64) time.Duration {
	t.Helper()
	return f.waitAll(t, fmt.Sprintf("at revision %d", rev), func(s admin.Status) bool { return s.Config.Revision >= rev })
}

// A fleet of three clb replicas follows one configuration in etcd: one
// put changes a weight, adds a listener or swaps a certificate on all
// three; a bad configuration is refused by each, which keeps serving;
// cut off from etcd they keep serving with no failed request, say so,
// and catch up with what was written meanwhile when the link returns,
// also when the revision they watched from was compacted meanwhile.
//
// The outage lasts 10 s, 2 s with -short.
func TestEtcdFleet(t *testing.T) {
	leakcheck.Check(t)
	e := startEtcd(t)
	link := newLinkProxy(t, e.addr)

	var backends []*httptest.Server
	for _, name := range []string{"a", "b", "c"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name+"\n") }))
		defer s.Close()
		backends = append(backends, s)
	}
	webPort, addedPort, tlsPort := configPort(t), configPort(t), configPort(t)
	doc := func(weightA int, extra string) string {
		var b strings.Builder
		b.WriteString("VServerGroups:\n  - VServerGroupId: web\n    BackendServers:\n")
		for i, s := range backends {
			w := 100
			if i == 0 {
				w = weightA
			}
			fmt.Fprintf(&b, "      - {ServerId: %c, ServerIp: 127.0.0.1, Port: %d, Weight: %d}\n", 'a'+i, s.Listener.Addr().(*net.TCPAddr).Port, w)
		}
		b.WriteString("ServerCertificates: [{ServerCertificateId: web, CertificateFile: certs/web.pem, PrivateKeyFile: certs/web.pem}]\n")
		fmt.Fprintf(&b, "Listeners:\n  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", webPort)
		fmt.Fprintf(&b, "  - {ListenerProtocol: https, ListenerPort: %d, VServerGroupId: web, ServerCertificateId: web, HealthCheck: \"off\"}\n", tlsPort)
		return b.String() + extra
	}
	added := fmt.Sprintf("  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", addedPort)
	e.put(t, "/lb/certs/web.pem", pemPair(t, "v1.example"))
	e.put(t, "/lb/config", doc(100, ""))

	var f fleet
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		p := startClb(t, "-config", "etcd://"+link.addr()+"/lb", "-listen-address", ip, "-admin", "127.0.0.1:0", "-etcd-probe", "200ms")
		f = append(f, asReplica(t, p, ip))
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(ip string, port int) (string, error) {
		resp, err := c.Get(fmt.Sprintf("http://%s:%d/", ip, port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %s", resp.Status)
		}
		return strings.TrimSpace(string(body)), err
	}
	// served asks each replica n times on port and counts the backends.
	served := func(port, n int) map[string]int {
		t.Helper()
		seen := map[string]int{}
		for _, r := range f {
			for range n {
				name, err := get(r.ip, port)
				if err != nil {
					t.Fatalf("replica %s port %d: %v", r.ip, port, err)
				}
				seen[name]++
			}
		}
		return seen
	}
	if seen := served(webPort, 6); seen["a"] == 0 {
		t.Fatalf("before any change backend a got nothing: %v", seen)
	}

	// One put, applied by all three.
	var times []string
	step := func(what string, key, value string, check func()) {
		t.Helper()
		start := time.Now()
		rev := e.put(t, key, value)
		f.applied(t, rev)
		took := time.Since(start)
		times = append(times, fmt.Sprintf("%s %v", what, took.Round(time.Millisecond)))
		check()
	}
	step("weight", "/lb/config", doc(0, ""), func() {
		if seen := served(webPort, 6); seen["a"] != 0 {
			t.Errorf("after weight 0 for a: %v", seen)
		}
	})
	step("listener", "/lb/config", doc(0, added), func() {
		if seen := served(addedPort, 2); seen["b"]+seen["c"] != 6 {
			t.Errorf("the added listener served %v", seen)
		}
	})
	step("certificate", "/lb/certs/web.pem", pemPair(t, "v2.example"), func() {
		for _, r := range f {
			conn, err := tls.Dial("tcp", fmt.Sprintf("%s:%d", r.ip, tlsPort), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "v2.example" {
				t.Errorf("replica %s serves %q after the swap, want v2.example", r.ip, cn)
			}
			conn.Close()
		}
	})
	t.Logf("put to applied on all three replicas: %s", strings.Join(times, ", "))

	// A bad configuration: each replica refuses it and keeps serving.
	bad := e.put(t, "/lb/config", doc(100, added)+"  - {ListenerProtocol: udp, ListenerPort: 4789, BackendServerPort: 1, HealthCheck: \"off\"}\n")
	f.waitAll(t, "refusing the bad revision", func(s admin.Status) bool { return s.Config.Seen >= bad && s.Config.Refused == 1 })
	for _, r := range f {
		if cs := r.status(t).Config; cs.Revision >= bad || !strings.Contains(cs.Error, "4789 reserved for udp") {
			t.Errorf("replica %s after a bad configuration: %+v", r.ip, cs)
		}
	}
	if seen := served(webPort, 3); seen["a"] != 0 {
		t.Errorf("the refused configuration (weight 100 for a) was applied: %v", seen)
	}

	// The outage: a client loop over the replicas meanwhile.
	outage := 10 * time.Second
	if testing.Short() {
		outage = 2 * time.Second
	}
	var ok, failed atomic.Int64
	ctx, stopLoop := context.WithCancel(context.Background())
	var loop sync.WaitGroup
	loop.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := get(f[i%len(f)].ip, webPort); err != nil {
				failed.Add(1)
				t.Errorf("request %d to %s during the outage: %v", i, f[i%len(f)].ip, err)
			} else {
				ok.Add(1)
			}
		}
	})
	cut := time.Now()
	link.Cut()
	f.waitAll(t, "disconnected", func(s admin.Status) bool { return !s.Config.Connected })
	for _, r := range f {
		resp, err := http.Get("http://" + r.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("clb_config_source_up{source=%q} 0\n", "etcd://"+link.addr()+"/lb"); !strings.Contains(string(m), want) {
			t.Errorf("replica %s cut off: no %q in /metrics", r.ip, want)
		}
	}
	during := e.put(t, "/lb/config", doc(0, ""))
	time.Sleep(outage - time.Since(cut)) // the outage itself, not a wait for something
	for _, r := range f {
		if cs := r.status(t).Config; cs.Connected || cs.Revision >= during {
			t.Errorf("replica %s while cut off: %+v", r.ip, cs)
		}
	}
	link.Restore()
	catchUp := f.applied(t, during)
	stopLoop()
	loop.Wait()
	f.waitAll(t, "connected", func(s admin.Status) bool { return s.Config.Connected })
	for _, r := range f {
		if name, err := get(r.ip, addedPort); err == nil {
			t.Errorf("replica %s: the listener removed during the outage still serves (%s)", r.ip, name)
		}
	}
	t.Logf("outage %v: %d requests served, %d failed; update written meanwhile applied on all three %v after the link returned",
		outage, ok.Load(), failed.Load(), catchUp.Round(time.Millisecond))
	if ok.Load() == 0 {
		t.Error("no request served during the outage")
	}

	// Compaction during an outage: the replicas read the prefix again.
	link.Cut()
	f.waitAll(t, "disconnected", func(s admin.Status) bool { return !s.Config.Connected })
	e.put(t, "/lb/config", doc(0, added))
	last := e.put(t, "/lb/config", doc(100, ""))
	if _, err := e.cli.Compact(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	link.Restore()
	reread := f.applied(t, last)
	for _, r := range f {
		if !strings.Contains(r.stderr.String(), "watch revision compacted") {
			t.Errorf("replica %s did not log the compaction:\n%s", r.ip, r.stderr)
		}
	}
	if seen := served(webPort, 6); seen["a"] == 0 {
		t.Errorf("after the compacted catch-up backend a (weight 100) got nothing: %v", seen)
	}
	t.Logf("compacted catch-up applied on all three %v after the link returned", reread.Round(time.Millisecond))

	for _, r := range f {
		r.stop(t)
	}
	c.CloseIdleConnections()
}
