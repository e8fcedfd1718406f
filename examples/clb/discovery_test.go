package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"

	"github.com/lbkit/lbkit/internal/dnstest"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// Every problem of a Discovery is reported at once, at its field.
func TestDiscoveryConfigErrors(t *testing.T) {
	data := `VServerGroups:
  - VServerGroupId: a
    Discovery: {Type: MX, Family: v4, Resolver: "dns.example", MinTTL: 0, MaxTTL: 100000}
  - VServerGroupId: b
    BackendServers: [{ServerId: s, ServerIp: 127.0.0.1, Port: 80}]
    Discovery: {Name: b.svc.example, Type: SRV, Port: 80, MinTTL: 60, MaxTTL: 30}
  - VServerGroupId: c
    Discovery: {Name: c.svc.example}
  - VServerGroupId: d
    Discovery: {Name: "d..svc", Port: 80, Resolver: 127.0.0.1}
MasterSlaveServerGroups:
  - MasterSlaveServerGroupId: m
    Discovery: {Name: _http._tcp.m.svc.example, Type: SRV, Resolver: "127.0.0.1:5353"}
Listeners:
  - {ListenerProtocol: tcp, ListenerPort: 9000, VServerGroupId: a}
`
	f, err := Parse("d.yaml", ".", []byte(data))
	if err == nil {
		_, err = planFile(f, testEnv(t))
	}
	want := []string{
		`d.yaml:3: VServerGroups[0].Discovery.Name: required`,
		`d.yaml:3: VServerGroups[0].Discovery.Type: "MX": want A or SRV`,
		`d.yaml:3: VServerGroups[0].Discovery.Port: required with Type A`,
		`d.yaml:3: VServerGroups[0].Discovery.Family: "v4": want ipv4 or ipv6`,
		`d.yaml:3: VServerGroups[0].Discovery.Resolver: "dns.example": want an IP address, with a port or without (53), e.g. 127.0.0.1:5353`,
		`d.yaml:3: VServerGroups[0].Discovery.MinTTL: 0 out of range 1–86400 (seconds)`,
		`d.yaml:3: VServerGroups[0].Discovery.MaxTTL: 100000 out of range 1–86400 (seconds)`,
		`d.yaml:6: VServerGroups[1].Discovery: a group takes its members from Discovery or from its server list, not both`,
		`d.yaml:6: VServerGroups[1].Discovery.Port: not with Type SRV: the records carry the port`,
		`d.yaml:6: VServerGroups[1].Discovery.MaxTTL: 30 below MinTTL 60`,
		`d.yaml:8: VServerGroups[2].Discovery.Port: required with Type A`,
		`d.yaml:10: VServerGroups[3].Discovery.Name: "d..svc": not a domain name`,
	}
	if err == nil || !equal(strings.Split(err.Error(), "\n"), want) {
		t.Fatalf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// greeters are TCP servers on one port of 127.0.0.1 and 127.0.0.2 (the
// addresses of one DNS name), each greeting with its address.
func greeters(t *testing.T) int {
	t.Helper()
	var wg sync.WaitGroup
	for range 10 {
		var lns []net.Listener
		port := 0
		for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			port = ln.Addr().(*net.TCPAddr).Port
			lns = append(lns, ln)
		}
		if len(lns) < 2 {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for _, ln := range lns {
			wg.Go(func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s\n", ln.Addr())
					c.Close()
				}
			})
		}
		t.Cleanup(func() {
			for _, ln := range lns {
				ln.Close()
			}
			wg.Wait()
		})
		return port
	}
	t.Fatal("no port free on 127.0.0.1 and 127.0.0.2")
	return 0
}

// greetedBy dials addr n times and returns the backends that answered.
func greetedBy(t *testing.T, addr string, n int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			t.Fatalf("no greeting through %s: %v", addr, err)
		}
		seen[strings.TrimSpace(line)] = true
	}
	return seen
}

// A listener on a DNS-named group: it starts with the discovered
// members, a reload that keeps the Discovery keeps the source and the
// members' state, one that changes it starts a new source, one back to
// listed servers stops it; stop ends every source.
func TestDiscoveryGroup(t *testing.T) {
	leakcheck.Check(t)
	port := greeters(t)
	m := dnstest.Start(t, 1, "127.0.0.1 web.svc.test\n127.0.0.2 web.svc.test\n")
	lport := configPort(t)
	config := func(discovery string) string {
		return fmt.Sprintf(`VServerGroups:
  - VServerGroupId: web
    %s
Listeners:
  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: web, Scheduler: rr, HealthCheck: "off"}
`, discovery, lport)
	}
	dnsGroup := fmt.Sprintf("Discovery: {Name: web.svc.test, Port: %d, Family: ipv4, Resolver: %q}", port, m.Addr)
	e := testEnv(t)
	_, p := mustPlan(t, "d.yaml", config(dnsGroup))
	a, err := start(p, e)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.stop(ctx)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(lport))
	one, two := net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), net.JoinHostPort("127.0.0.2", strconv.Itoa(port))
	if got := greetedBy(t, addr, 4); !got[one] || !got[two] {
		t.Fatalf("connections reached %v, want both discovered members %s and %s", got, one, two)
	}
	r := a.running["tcp_"+strconv.Itoa(lport)]
	src := r.src.main
	if src == nil {
		t.Fatal("no source for the DNS-named group")
	}
	total := func() uint64 { mb, _ := r.l.Group().Member(one); return mb.Total() }
	before := total()

	// The same Discovery: the source and the members' counters stay.
	_, p2 := mustPlan(t, "d.yaml", config(dnsGroup))
	if err := a.reload(p2); err != nil {
		t.Fatal(err)
	}
	if r.src.main != src {
		t.Error("a reload keeping the Discovery replaced its source")
	}
	if got := total(); got != before {
		t.Errorf("member %s: Total %d after the reload, want %d kept", one, got, before)
	}

	// Another Discovery (IPv4 only → only 127.0.0.2 by another name): a new source.
	m.SetHosts("127.0.0.1 web.svc.test\n127.0.0.2 web.svc.test\n127.0.0.2 two.svc.test\n")
	_, p3 := mustPlan(t, "d.yaml", config(strings.Replace(dnsGroup, "web.svc.test", "two.svc.test", 1)))
	if err := a.reload(p3); err != nil {
		t.Fatal(err)
	}
	if r.src.main == src || r.src.main == nil {
		t.Error("a reload changing the Discovery kept the old source")
	}
	if got := greetedBy(t, addr, 4); len(got) != 1 || !got[two] {
		t.Errorf("after the Discovery change, connections reached %v, want only %s", got, two)
	}
	// The admin server names the source that now feeds the group.
	lname := "tcp_" + strconv.Itoa(lport)
	ds := a.discoveryStatus()
	if len(ds) != 1 || ds[0].Listener != lname || ds[0].Group != "default" || ds[0].Name != "two.svc.test." || ds[0].Type != "A" || ds[0].Members != 1 || ds[0].Lookups < 1 {
		t.Errorf("discoveryStatus = %+v, want one A source two.svc.test. for %s's default group, 1 member", ds, lname)
	}
	srv := httptest.NewServer(admin.New(a.inst, admin.Options{Discovery: a.discoveryStatus}))
	defer srv.Close()
	_, metrics := getBody(t, srv.Client(), srv.URL+"/metrics")
	if want := `clb_discovery_members{group="default",listener="` + lname + `",name="two.svc.test."} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s:\n%s", want, metrics)
	}
	if want := `"discovery":[{"listener":"` + lname + `","group":"default","name":"two.svc.test.","type":"A","members":1`; !strings.Contains(func() string { _, b := getBody(t, srv.Client(), srv.URL+"/status.json"); return b }(), want) {
		t.Errorf("/status.json lacks %s", want)
	}

	// Listed servers again: the source stops, the servers are the members.
	_, p4 := mustPlan(t, "d.yaml", config(fmt.Sprintf("BackendServers: [{ServerId: s1, ServerIp: 127.0.0.1, Port: %d}]", port)))
	if err := a.reload(p4); err != nil {
		t.Fatal(err)
	}
	if r.src.main != nil {
		t.Error("a reload to listed servers kept a source")
	}
	if got := greetedBy(t, addr, 2); len(got) != 1 || !got[one] {
		t.Errorf("after the reload to listed servers, connections reached %v, want only %s", got, one)
	}
	// And DNS again, left running for stop to end (leakcheck).
	if err := a.reload(p); err != nil || r.src.main == nil {
		t.Fatalf("reload back to Discovery: %v, source %v", err, r.src.main)
	}
}
