package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/getloop"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/internal/proctest"
)

// reloadBase is a configuration with an ACL-guarded HTTP listener and a
// TCP listener over one server group; the test fills WA (backend a's
// weight), ACL (the ACL's entries), XFF (the HTTP listener's
// XForwardedFor, a field that changes only by replacing the listener)
// and the ports.
const reloadBase = `LoadBalancerId: lb-reload
AccessControlLists:
  - {AclId: acl-lo, AddressIPVersion: ipv4, AclEntrys: [ACL]}
VServerGroups:
  - VServerGroupId: web
    BackendServers:
      - {ServerId: a, ServerIp: 127.0.0.1, Port: PA, Weight: WA}
      - {ServerId: b, ServerIp: 127.0.0.1, Port: PB, Weight: 100}
Listeners:
  - {ListenerProtocol: http, ListenerPort: HTTP, VServerGroupId: web, HealthCheck: "off", XForwardedFor: XFF, AclStatus: "on", AclType: white, AclId: acl-lo}
  - {ListenerProtocol: tcp, ListenerPort: TCP, VServerGroupId: web, HealthCheck: "off"}
`

// reloadRig is a running app over two named HTTP backends.
type reloadRig struct {
	a       *app
	e       *env
	replace *strings.Replacer
}

func newReloadRig(t *testing.T) *reloadRig {
	t.Helper()
	var ports []string
	for _, name := range []string{"a", "b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(srv.Close)
		ports = append(ports, strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port))
	}
	rg := &reloadRig{e: testEnv(t), replace: strings.NewReplacer("PA", ports[0], "PB", ports[1],
		"HTTP", strconv.Itoa(configPort(t)), "TCP", strconv.Itoa(configPort(t)))}
	a, err := start(rg.plan(t, "100", "{AclEntryIP: 127.0.0.0/8}", `"on"`, ""), rg.e)
	if err != nil {
		t.Fatal(err)
	}
	rg.a = a
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.stop(ctx)
	})
	return rg
}

// plan plans the base configuration with these values and extra
// listeners.
func (rg *reloadRig) plan(t *testing.T, wa, entries, xff, extra string) *plan {
	t.Helper()
	data := strings.NewReplacer("WA", wa, "ACL", entries, "XFF", xff).Replace(rg.replace.Replace(reloadBase)) + extra
	f, err := Parse("reload.yaml", ".", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	p, err := planFile(f, rg.e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// state describes everything a reload may change: each listener (the
// same object), its port, state, members with weights and states, ACL
// entries and cap.
func (rg *reloadRig) state() string {
	var b strings.Builder
	for _, l := range rg.a.inst.Listeners() {
		fmt.Fprintf(&b, "%s@%p port %d %s: %s; bandwidth %d\n", l.Name(), l, l.Port(), l.State(), l.Group(), l.Bandwidth())
		for _, m := range l.Group().Members() {
			fmt.Fprintf(&b, "  %s weight %d %s\n", m.ID(), m.Weight(), m.State())
		}
	}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range rg.a.acls {
			if !yield(id) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "acl %s: %v\n", id, rg.a.acls[id].Entries())
	}
	return b.String()
}

// serves checks that every listener answers a real request from one of
// the backends.
func (rg *reloadRig) serves(t *testing.T) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, l := range rg.a.inst.Listeners() {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", l.Port()))
		if err != nil {
			t.Fatalf("%s: %v", l.Name(), err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if s := string(body); s != "a" && s != "b" {
			t.Fatalf("%s answered %d %q", l.Name(), resp.StatusCode, s)
		}
	}
}

// A reload whose second new listener's port is taken, by this process or
// by another, changes nothing: the same listeners on the same ports with
// the same members, weights and ACL entries still serve, the first new
// listener's port is free, and the error names the listener at fault.
func TestReloadAllOrNothing(t *testing.T) {
	for _, holder := range []string{"this process", "another process"} {
		t.Run(holder, func(t *testing.T) {
			leakcheck.Check(t)
			rg := newReloadRig(t)
			before := rg.state()
			rg.serves(t)
			free, taken := configPort(t), 0
			if holder == "this process" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				taken = ln.Addr().(*net.TCPAddr).Port
			} else {
				taken, _ = proctest.HoldPort(t)
			}
			// New weights, new ACL entries, the HTTP listener replaced,
			// and two listeners added: everything a reload changes.
			p := rg.plan(t, "10", "{AclEntryIP: 127.0.0.1/32}, {AclEntryIP: 10.0.0.0/8}", `"off"`, fmt.Sprintf(
				"  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n"+
					"  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", free, taken))
			err := rg.a.reload(p)
			want := fmt.Sprintf("listener http_%d (http port %d): listen tcp 127.0.0.1:%d: bind: address already in use", taken, taken, taken)
			if err == nil || err.Error() != want {
				t.Fatalf("reload = %v, want %q", err, want)
			}
			if after := rg.state(); after != before {
				t.Errorf("a refused reload changed the app:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			rg.serves(t)
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", free))
			if err != nil {
				t.Fatalf("the refused reload holds port %d: %v", free, err)
			}
			ln.Close()

			// The same change without the taken port applies whole.
			p = rg.plan(t, "10", "{AclEntryIP: 127.0.0.1/32}, {AclEntryIP: 10.0.0.0/8}", `"off"`, fmt.Sprintf(
				"  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", free))
			if err := rg.a.reload(p); err != nil {
				t.Fatal(err)
			}
			after := rg.state()
			for _, want := range []string{"a weight 10 ready", fmt.Sprintf("tcp_%d@", free), "acl acl-lo: [127.0.0.1/32 10.0.0.0/8]"} {
				if !strings.Contains(after, want) {
					t.Errorf("after the reload, lacks %q:\n%s", want, after)
				}
			}
			rg.serves(t)
		})
	}
}

// A reload that replaces a listener on the same port loses no connection
// attempt: a client dialing in a loop through several reloads is never
// refused.
func TestReloadReplaceKeepsPort(t *testing.T) {
	leakcheck.Check(t)
	rg := newReloadRig(t)
	http0 := rg.a.inst.Listeners()[0]
	loop := getloop.Start(fmt.Sprintf("http://127.0.0.1:%d/", http0.Port()), nil)
	defer loop.Stop()
	for i := range 6 {
		xff := []string{`"off"`, `"on"`}[i%2]
		if err := rg.a.reload(rg.plan(t, "100", "{AclEntryIP: 127.0.0.0/8}", xff, "")); err != nil {
			t.Fatal(err)
		}
		if l := rg.a.inst.Listeners(); l[len(l)-1] == http0 {
			t.Fatalf("reload %d kept the http listener; want it replaced", i)
		}
		n := loop.Served.Load()
		deadline := time.Now().Add(5 * time.Second)
		for loop.Served.Load() < n+3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	loop.Stop()
	served, refused, failed := loop.Served.Load(), loop.Refused.Load(), loop.Failed.Load()
	t.Logf("6 replacements: %d requests served, %d refused, %d failed", served, refused, failed)
	if refused != 0 || failed != 0 || served == 0 {
		t.Errorf("through 6 replacements: %d refused, %d other errors (last: %v), %d served; want 0, 0, >0", refused, failed, loop.LastErr.Load(), served)
	}
}
