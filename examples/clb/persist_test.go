package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/lbkit/lbkit/listener"
)

// fileRig runs the API rig from a file on disk, as -config FILE does;
// sighup reloads that file.
func fileRig(t *testing.T) (*apiRig, string) {
	t.Helper()
	ar := newAPIRig(t, opsTokens(t))
	path := filepath.Join(t.TempDir(), "lb.yaml")
	if err := os.WriteFile(path, ar.plan(t, "100", "{AclEntryIP: 127.0.0.0/8}", `"on"`, "").file.src, 0o640); err != nil {
		t.Fatal(err)
	}
	sighup(t, ar, path)
	return ar, path
}

func sighup(t *testing.T, ar *apiRig, path string) {
	t.Helper()
	f, err := LoadFile(path)
	if err == nil {
		var p *plan
		if p, err = planFile(f, ar.e); err == nil {
			err = ar.ctl.reload(p)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// With a file, ?persist=1 rewrites it (keeping its mode) and a reload
// keeps the change; without it a reload undoes the change.
func TestAPIPersistFile(t *testing.T) {
	leakcheck.Check(t)
	ar, path := fileRig(t)
	web, webPort := ar.listenerName(t, listener.HTTP)
	w := "/api/listeners/" + web + "/backends/a/weight"

	if code, body := ar.do(t, "POST", w, opsToken, `{"weight": 0}`); code != 200 {
		t.Fatalf("weight 0: %d %s", code, body)
	}
	sighup(t, ar, path)
	if got := answers(t, webPort, 4); got["a"] != 2 {
		t.Errorf("without persist, after a reload answers = %v, want a 2, b 2", got)
	}

	code, body := ar.do(t, "POST", w+"?persist=1", opsToken, `{"weight": 0}`)
	if code != 200 || !strings.Contains(body, "persisted to "+path) {
		t.Fatalf("weight 0, persist: %d %s", code, body)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("rewritten file: %v, %v; want mode 0640", fi.Mode(), err)
	}
	sighup(t, ar, path)
	if got := answers(t, webPort, 4); got["a"] != 0 || got["b"] != 4 {
		t.Errorf("with persist, after a reload answers = %v, want only b", got)
	}
	if code, body := ar.do(t, "POST", "/api/listeners/"+web+"/backends/a/state?persist=1", opsToken, `{"state": "ready"}`); code != 200 {
		t.Fatalf("ready, persist: %d %s", code, body)
	}
	sighup(t, ar, path)
	if got := answers(t, webPort, 4); got["a"] != 2 {
		t.Errorf("persisted ready, after a reload answers = %v, want a 2, b 2", got)
	}

	for _, tc := range []struct{ name, path, body, want string }{
		{"maint", "/api/listeners/" + web + "/backends/a/state?persist=1", `{"state": "maint"}`, "400 admin: invalid request: state maint has no field in the configuration: it cannot be persisted"},
		{"bad switch", w + "?persist=yes", `{"weight": 5}`, `400 admin: invalid request: persist "yes": want 1 or 0`},
	} {
		code, body := ar.do(t, "POST", tc.path, opsToken, tc.body)
		if got := fmt.Sprint(code, " ", strings.TrimSpace(body)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	// A file edited since it was loaded is not overwritten.
	if err := os.WriteFile(path, []byte("# edited\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if code, body := ar.do(t, "POST", w+"?persist=1", opsToken, `{"weight": 9}`); code != 409 || !strings.Contains(body, "differs from the configuration running") {
		t.Errorf("persist over an edited file: %d %s, want 409", code, body)
	}
	if b, _ := os.ReadFile(path); string(b) != "# edited\n" {
		t.Errorf("edited file overwritten:\n%s", b)
	}
}

// With etcd, a weight set through one replica's API is written to etcd
// and reaches the other replica through its watch; a write on a stale
// revision is refused with 409 and overwrites nothing.
func TestAPIPersistEtcd(t *testing.T) {
	leakcheck.Check(t)
	e := startEtcd(t)
	var backends []*httptest.Server
	for _, name := range []string{"a", "b"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name+"\n") }))
		defer s.Close()
		backends = append(backends, s)
	}
	port := configPort(t)
	var doc strings.Builder
	doc.WriteString("# the fleet\nVServerGroups:\n  - VServerGroupId: web\n    BackendServers:\n")
	for i, s := range backends {
		fmt.Fprintf(&doc, "      - {ServerId: %c, ServerIp: 127.0.0.1, Port: %d, Weight: 100}\n", 'a'+i, s.Listener.Addr().(*net.TCPAddr).Port)
	}
	fmt.Fprintf(&doc, "Listeners:\n  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", port)
	e.put(t, "/lb/config", doc.String())
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops:"+opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var f fleet
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		p := startClb(t, "-config", "etcd://"+e.addr+"/lb", "-listen-address", ip, "-admin", "127.0.0.1:0", "-admin-tokens", tokens)
		f = append(f, asReplica(t, p, ip))
	}
	post := func(r *replica, path, body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+r.admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+opsToken)
		if strings.HasSuffix(path, "config") {
			req.Method = "PUT"
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	name := f[0].status(t).Listeners[0].Name
	code, body := post(f[0], "/api/listeners/"+name+"/backends/a/weight", `{"weight": 0}`)
	if code != 200 || !strings.Contains(body, "written to etcd://") {
		t.Fatalf("weight 0 through replica 1: %d %s", code, body)
	}
	f.waitAll(t, "draining a", func(s admin.Status) bool {
		for _, b := range s.Listeners[0].Backends {
			if b.ID == "a" {
				return b.State == "drain"
			}
		}
		return false
	})
	got, err := e.cli.Get(t.Context(), "/lb/config")
	if err != nil || !strings.Contains(string(got.Kvs[0].Value), "ServerId: a, ServerIp: 127.0.0.1, Port: ") || !strings.Contains(string(got.Kvs[0].Value), "Weight: 0}") {
		t.Errorf("etcd holds:\n%s (%v)", got.Kvs[0].Value, err)
	}
	applied := got.Kvs[0].ModRevision
	f.applied(t, applied)

	// A write on a revision another writer has passed is refused and
	// overwrites nothing.
	src, err := newEtcdSource("etcd://"+e.addr+"/lb", etcdOptions{Timeout: 5 * time.Second, Probe: time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	won := e.put(t, "/lb/config", doc.String())
	if _, err := src.write([]byte("# stale\n"), applied); !errors.Is(err, admin.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("changed at revision %d, after revision %d", won, applied)) {
		t.Errorf("stale write: %v, want a conflict naming revisions %d and %d", err, won, applied)
	}
	if got, _ := e.cli.Get(t.Context(), "/lb/config"); string(got.Kvs[0].Value) != doc.String() {
		t.Errorf("a stale write changed etcd:\n%s", got.Kvs[0].Value)
	}
	if rev, err := src.write([]byte(doc.String()), won); err != nil || rev <= won {
		t.Errorf("write on the current revision: %d, %v", rev, err)
	}
}
