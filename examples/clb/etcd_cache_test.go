package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// With -etcd-cache a replica keeps the last configuration it applied on
// disk (mode 0600), starts from it while etcd is unreachable, says so,
// and catches up with the writes it missed once etcd answers. Without the
// cache the same start fails.
func TestEtcdCache(t *testing.T) {
	leakcheck.Check(t)
	e := startEtcd(t)
	link := newLinkProxy(t, e.addr)
	doc := backendDoc(t)
	first, second := configPort(t), configPort(t)
	written := e.put(t, "/lb/config", doc(first))
	cache := filepath.Join(t.TempDir(), "lb.cache")
	args := []string{"-config", "etcd://" + link.addr() + "/lb", "-admin", "127.0.0.1:0", "-etcd-probe", "200ms", "-etcd-timeout", "1s"}
	withCache := append(args[:len(args):len(args)], "-etcd-cache", cache)

	startClb(t, withCache...).stop(t)
	fi, err := os.Stat(cache)
	if err != nil {
		t.Fatalf("no cache after a run: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("cache mode %v, want 0600 (it holds keys)", perm)
	}
	if c := readCache(t, cache); c.Revision != written || c.Prefix != "/lb" || string(c.Keys["config"]) != doc(first) {
		t.Errorf("cache holds revision %d of %q, config %q; want revision %d of /lb", c.Revision, c.Prefix, c.Keys["config"], written)
	}

	link.Cut()
	if out, err := exec.Command(clbBinary(t), args...).CombinedOutput(); err == nil || !strings.Contains(string(out), "context deadline exceeded") {
		t.Errorf("a start without the cache while etcd is away: %v\n%s", err, out)
	}
	p := startClb(t, withCache...)
	r := asReplica(t, p, "127.0.0.1")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, line := firstLine(t, c, fmt.Sprintf("http://127.0.0.1:%d/", first)); line != "backend" {
		t.Errorf("the cached configuration's listener answered %q", line)
	}
	if cs := r.status(t).Config; cs.Connected || cs.Revision != written {
		t.Errorf("status started from the cache: %+v, want disconnected at revision %d", cs, written)
	}
	if !strings.Contains(p.stderr.String(), "starting from the cached configuration") {
		t.Errorf("no log of the start from the cache:\n%s", p.stderr)
	}

	// A write while the replica is cut off reaches it with the link.
	missed := e.put(t, "/lb/config", doc(second))
	link.Restore()
	fleet{r}.applied(t, missed)
	if _, line := firstLine(t, c, fmt.Sprintf("http://127.0.0.1:%d/", second)); line != "backend" {
		t.Errorf("the listener moved while cut off answered %q", line)
	}
	if cs := r.status(t).Config; !cs.Connected {
		t.Errorf("status after the link returned: %+v", cs)
	}
	if got := readCache(t, cache).Revision; got != missed {
		t.Errorf("cache at revision %d after catching up, want %d", got, missed)
	}
	p.stop(t)
}

func readCache(t *testing.T, path string) etcdCache {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c etcdCache
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
