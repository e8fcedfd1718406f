package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// appliedVersion is the version of the configuration a applied last.
func appliedVersion(t *testing.T, a *app) string {
	t.Helper()
	c := a.applied.Load()
	if c == nil {
		t.Fatal("no configuration applied")
	}
	return c.version
}

// The version recorded is the applied plan's: it follows a reload that
// applies, stays through one that is refused (a port taken), and is the
// same for the same bytes planned twice.
func TestConfigVersionFollowsApply(t *testing.T) {
	leakcheck.Check(t)
	rg := newReloadRig(t)
	v0 := appliedVersion(t, rg.a)
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(v0) {
		t.Fatalf("version %q, want 12 hex digits", v0)
	}
	if again := rg.plan(t, "100", "{AclEntryIP: 127.0.0.0/8}", `"on"`, "").version; again != v0 {
		t.Errorf("the same configuration planned again: version %s, want %s", again, v0)
	}

	p := rg.plan(t, "50", "{AclEntryIP: 127.0.0.0/8}", `"on"`, "")
	if err := rg.a.reload(p); err != nil {
		t.Fatal(err)
	}
	v1 := appliedVersion(t, rg.a)
	if v1 == v0 || v1 != p.version {
		t.Errorf("after a reload to weight 50: version %s, want %s (not %s)", v1, p.version, v0)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	refused := rg.plan(t, "10", "{AclEntryIP: 127.0.0.0/8}", `"on"`,
		fmt.Sprintf("  - {ListenerProtocol: tcp, ListenerPort: %d, VServerGroupId: web, HealthCheck: \"off\"}\n", taken))
	if err := rg.a.reload(refused); err == nil {
		t.Fatal("a reload onto a taken port applied")
	}
	if v := appliedVersion(t, rg.a); v != v1 {
		t.Errorf("after a refused reload: version %s, want %s still", v, v1)
	}
}

// A certificate file changed under an unchanged configuration file
// changes the version: it is part of what a reload applies.
func TestConfigVersionCoversPEMFiles(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(t)
	pemFile := filepath.Join(dir, "www.pem")
	cfg := fmt.Sprintf(`ServerCertificates:
  - {ServerCertificateId: www, CertificateFile: www.pem, PrivateKeyFile: www.pem}
BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]
Listeners: [{ListenerProtocol: https, ListenerPort: %d, BackendServerPort: 80, ServerCertificateId: www, HealthCheck: "off"}]
`, configPort(t))
	version := func(cn string) string {
		t.Helper()
		if err := os.WriteFile(pemFile, []byte(pemPair(t, cn)), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Parse("lb.yaml", dir, []byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		p, err := planFile(f, e)
		if err != nil {
			t.Fatal(err)
		}
		return p.version
	}
	if a, b := version("a.example"), version("b.example"); a == b {
		t.Errorf("a new certificate left the version at %s", a)
	}
}

// An etcd snapshot's version depends on its keys and values, not on the
// order they came in nor on the revision; keys and values cannot run
// into each other.
func TestSnapshotVersion(t *testing.T) {
	v := func(rev int64, kv ...string) string {
		s := etcdSnapshot{rev: rev, kv: map[string][]byte{}}
		for i := 0; i < len(kv); i += 2 {
			s.kv[kv[i]] = []byte(kv[i+1])
		}
		return snapshotDigest(s).version()
	}
	base := v(5, "config", "x: 1", "certs/a.pem", "A")
	for _, tc := range []struct {
		name string
		got  string
		same bool
	}{
		{"same keys at another revision", v(9, "certs/a.pem", "A", "config", "x: 1"), true},
		{"a value changed", v(5, "config", "x: 2", "certs/a.pem", "A"), false},
		{"a key added", v(5, "config", "x: 1", "certs/a.pem", "A", "certs/b.pem", ""), false},
		{"a key renamed", v(5, "config", "x: 1", "certs/b.pem", "A"), false},
		{"key and value shifted", v(5, "config", "x: 1", "certs/a.pe", "mA"), false},
	} {
		if (tc.got == base) != tc.same {
			t.Errorf("%s: version %s, base %s, want same %v", tc.name, tc.got, base, tc.same)
		}
	}
}

func TestParseGeneration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"7", 7, ""},
		{"-1", 0, `CLB_GENERATION "-1": want a whole number, 0 or more`},
		{"two", 0, `CLB_GENERATION "two": want a whole number, 0 or more`},
	} {
		got, err := parseGeneration(tc.in)
		if got != tc.want || fmt.Sprint(err) != map[bool]string{true: "<nil>", false: tc.err}[tc.err == ""] {
			t.Errorf("parseGeneration(%q) = %d, %v; want %d, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// getStatus fetches /status.json from the admin server at addr.
func getStatus(t *testing.T, c *http.Client, addr string) (admin.Status, string) {
	t.Helper()
	resp, err := c.Get("http://" + addr + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Process == nil {
		t.Fatalf("status.json: %v, process %v", err, st.Process)
	}
	resp, err = c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return st, string(m)
}

// Two clb processes on one file report one version, the hash of the
// file; each its own PID, start time and generation (CLB_GENERATION).
// SIGHUP changes the version when the reload applies, not when it is
// refused.
func TestProcessVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.yaml")
	port := configPort(t)
	write := func(weight string) string {
		t.Helper()
		data := fmt.Sprintf("AdminAddress: 127.0.0.1:0\nBackendServers: [{ServerId: a, ServerIp: 127.0.0.1, Weight: %s}]\n"+
			"Listeners: [{ListenerProtocol: tcp, ListenerPort: %d, BackendServerPort: 9, HealthCheck: \"off\"}]\n", weight, port)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		// The digest's one part: the file, after its length.
		sum := sha256.Sum256(append(binary.BigEndian.AppendUint64(nil, uint64(len(data))), data...))
		return hex.EncodeToString(sum[:])[:versionLen]
	}
	v1 := write("100")
	first := startClb(t, "-config", path, "-listen-address", "127.0.0.1")
	t.Setenv(generationEnv, "3")
	second := startClb(t, "-config", path, "-listen-address", "127.0.0.2")
	adminOf := func(p *proc) string { return asReplica(t, p, "").admin }
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()

	s1, m1 := getStatus(t, c, adminOf(first))
	s2, m2 := getStatus(t, c, adminOf(second))
	for i, tc := range []struct {
		st  admin.Status
		m   string
		pid int
		gen int
	}{{s1, m1, first.cmd.Process.Pid, 0}, {s2, m2, second.cmd.Process.Pid, 3}} {
		p := tc.st.Process
		if p.ConfigVersion != v1 || p.PID != tc.pid || p.Generation != tc.gen || p.Started.IsZero() || p.ConfigApplied.Before(p.Started) {
			t.Errorf("replica %d: process %+v, want version %s, pid %d, generation %d, started before applied", i+1, *p, v1, tc.pid, tc.gen)
		}
		for _, want := range []string{
			fmt.Sprintf("clb_config_info{version=%q} 1\n", v1),
			fmt.Sprintf("clb_upgrade_generation %d\n", tc.gen),
			"clb_process_start_time_seconds ",
		} {
			if !strings.Contains(tc.m, want) {
				t.Errorf("replica %d: /metrics lacks %q", i+1, want)
			}
		}
	}
	second.stop(t)

	v2 := write("50")
	first.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, first, "msg=reloaded", 1)
	if st, m := getStatus(t, c, adminOf(first)); st.Process.ConfigVersion != v2 || !strings.Contains(m, fmt.Sprintf("clb_config_info{version=%q} 1\n", v2)) {
		t.Errorf("after a reload: version %s, want %s", st.Process.ConfigVersion, v2)
	}
	if !strings.Contains(first.stderr.String(), "version="+v2) {
		t.Errorf("the reload's log line lacks version=%s:\n%s", v2, first.stderr)
	}

	write("1000") // out of range: refused
	first.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, first, "reload refused", 1)
	if st, _ := getStatus(t, c, adminOf(first)); st.Process.ConfigVersion != v2 {
		t.Errorf("after a refused reload: version %s, want %s still", st.Process.ConfigVersion, v2)
	}
	first.stop(t)
}

// A CLB_GENERATION that is not a generation stops the start.
func TestBadGeneration(t *testing.T) {
	t.Setenv(generationEnv, "next")
	var out, errb strings.Builder
	if code := run([]string{"-config", writeTCPConfig(t, "g.yaml", "")}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, errb.String())
	}
	if want := "clb: CLB_GENERATION \"next\": want a whole number, 0 or more\n"; errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
}
