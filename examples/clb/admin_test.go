package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/leakcheck"
)

// writeTCPConfig writes a one-listener configuration and returns its
// path; extra is added at the top level.
func writeTCPConfig(t *testing.T, name, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	cfg := fmt.Sprintf("%sBackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]\n"+
		"Listeners: [{ListenerProtocol: tcp, ListenerPort: %d, BackendServerPort: 9, HealthCheck: \"off\"}]\n", extra, configPort(t))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// configPort returns a TCP port on 127.0.0.1 that was free a moment ago.
// A clb file must name its ListenerPort (the CLB's profile refuses 0), so
// these tests, unlike the library's, need a known port before the start.
func configPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// With -config the admin server listens only where told, so two clb
// processes with default flags run side by side; AdminAddress tells it
// (port 0: a free port, which the "Admin:" line reports).
func TestTwoConfigsOneHost(t *testing.T) {
	first := startClb(t, "-config", writeTCPConfig(t, "a.yaml", "AdminAddress: 127.0.0.1:0\n"))
	second := startClb(t, "-config", writeTCPConfig(t, "b.yaml", ""))
	m := regexp.MustCompile(`Admin: http://(127\.0\.0\.1:[1-9][0-9]*)/`).FindStringSubmatch(first.stdout)
	if m == nil {
		t.Fatalf("first clb's output lacks the admin address:\n%s", first.stdout)
	}
	admin := m[1]
	if strings.Contains(second.stdout, "Admin:") {
		t.Errorf("second clb started an admin server without being asked:\n%s", second.stdout)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET status.json = %d", resp.StatusCode)
	}
	c.CloseIdleConnections()
	first.stop(t)
	second.stop(t)
}

// A taken admin address stops the start with a message naming what to
// change, whether the address came from -admin or from AdminAddress.
func TestAdminBindFailure(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	want := fmt.Sprintf("clb: admin server: listen tcp %s: bind: address already in use (set -admin or AdminAddress, or -admin off)\n", taken)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"flag", []string{"-config", writeTCPConfig(t, "f.yaml", ""), "-admin", taken}},
		{"config", []string{"-config", writeTCPConfig(t, "c.yaml", "AdminAddress: "+taken+"\n")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append(tc.args, "-log-format", "json"), &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errb.String())
			}
			if !strings.Contains(errb.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, errb.String())
			}
		})
	}
}
