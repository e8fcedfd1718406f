package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/listener"
)

func testEnv(t *testing.T) *env {
	t.Helper()
	e, err := newEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.log = discardLogger()
	return e
}

func TestShippedConfigLoads(t *testing.T) {
	p, err := load("lb.yaml", testEnv(t))
	if err != nil {
		t.Fatalf("lb.yaml: %v", err)
	}
	if got, want := len(p.listeners), 5; got != want {
		t.Fatalf("lb.yaml: %d listeners, want %d", got, want)
	}
	byName := map[string]*lspec{}
	for _, s := range p.listeners {
		byName[s.name] = s
	}
	https := byName["https_8443"]
	if https == nil || https.cfg.HTTP.TLSPolicy == nil || https.cfg.HTTP.TLSPolicy.Name != "tls_cipher_policy_1_2_strict_with_1_3" {
		t.Errorf("https_8443 policy not loaded: %+v", https)
	}
	if https != nil && https.cfg.HTTP.Domains["shop.localhost"] == nil {
		t.Errorf("https_8443: extension domain shop.localhost missing")
	}
	if r := byName["http_8081"]; r == nil || r.cfg.HTTP.RedirectToPort != 8443 {
		t.Errorf("http_8081: not a redirect to 8443")
	}
	tcp := byName["tcp_9000"]
	if tcp == nil || len(tcp.main) != 2 || !tcp.main[1].Standby {
		t.Errorf("tcp_9000: master/slave group not loaded: %+v", tcp.main)
	}
	if h := byName["http_8080"]; h == nil || h.cfg.ACL == nil || len(h.cfg.HTTP.Rules) != 1 || h.cfg.HTTP.StickySession == nil {
		t.Errorf("http_8080: ACL, rule or cookie missing")
	}
}

// JSON is YAML: the same loader reads it, with line numbers.
func TestJSONConfig(t *testing.T) {
	data := `{
  "LoadBalancerId": "lb-json",
  "BackendServers": [{"ServerId": "a", "ServerIp": "127.0.0.1"}],
  "Listeners": [
    {"ListenerProtocol": "tcp", "ListenerPort": 9000, "BackendServerPort": 80, "Colour": "red"}
  ]
}`
	_, err := Parse("lb.json", ".", []byte(data))
	if err == nil || err.Error() != "lb.json:5: Listeners[0].Colour: unknown field" {
		t.Fatalf("err = %v", err)
	}
	ok := strings.Replace(data, `, "Colour": "red"`, "", 1)
	if _, err := Parse("lb.json", ".", []byte(ok)); err != nil {
		t.Fatal(err)
	}
}

const goodBase = `LoadBalancerId: lb-t
BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1}
VServerGroups:
  - VServerGroupId: vg
    BackendServers:
      - {ServerId: b, ServerIp: 127.0.0.1, Port: 81}
AccessControlLists:
  - AclId: acl-1
    AclEntrys: [{AclEntryIP: 10.0.0.0/8, AclEntryComment: office}]
  - {AclId: acl-6, AddressIPVersion: ipv6}
Listeners:
`

// Each error class is reported as file:line: field: why.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name      string
		listeners string
		want      []string
	}{
		{"unknown field", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
    Schedular: wrr
`, []string{"t.yaml:16: Listeners[0].Schedular: unknown field (did you mean Scheduler?)"}},
		{"case typo suggests", `
  - ListenerProtocol: tcp
    listenerPort: 9000
    BackendServerPort: 80
`, []string{"t.yaml:14: Listeners[0].listenerPort: unknown field (did you mean ListenerPort?)"}},
		{"wrong type", `
  - ListenerProtocol: tcp
    ListenerPort: nine
    BackendServerPort: 80
`, []string{`t.yaml:14: Listeners[0].ListenerPort: want an integer, got "nine"`}},
		{"switch value", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    Gzip: yes please
`, []string{`t.yaml:16: Listeners[0].Gzip: "yes please": want on or off`}},
		{"library range", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
    EstablishedTimeout: 5
`, []string{"t.yaml:16: Listeners[0].EstablishedTimeout: 5 out of range 10–900 (seconds)"}},
		{"cookie range", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    StickySession: "on"
    CookieTimeout: 90000
`, []string{"t.yaml:17: Listeners[0].CookieTimeout: 90000 out of range 1–86400 (seconds)"}},
		{"health range", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
    HealthyThreshold: 11
`, []string{"t.yaml:16: Listeners[0].HealthyThreshold: 11 out of range 2–10"}},
		{"dangling ids, all at once", `
  - ListenerProtocol: http
    ListenerPort: 8080
    VServerGroupId: vg-missing
    AclStatus: "on"
    AclType: white
    AclId: acl-missing
  - ListenerProtocol: https
    ListenerPort: 8443
    BackendServerPort: 80
    ServerCertificateId: cert-missing
`, []string{
			`t.yaml:15: Listeners[0].VServerGroupId: "vg-missing": no such group in VServerGroups`,
			`t.yaml:18: Listeners[0].AclId: "acl-missing": no such ACL in AccessControlLists`,
			`t.yaml:22: Listeners[1].ServerCertificateId: "cert-missing": no such certificate in ServerCertificates`,
		}},
		{"weight and bandwidth", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
    Bandwidth: 6000
`, []string{"t.yaml:16: Listeners[0].Bandwidth: 6000 out of range -1 (unlimited) or 1–5120 (Mbps)"}},
		{"port used twice", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
  - ListenerProtocol: http
    ListenerPort: 9000
    BackendServerPort: 80
`, []string{"t.yaml:17: Listeners[1].ListenerPort: 9000 already used by Listeners[0] (line 13)"}},
		{"redirect target missing", `
  - ListenerProtocol: http
    ListenerPort: 8081
    ListenerForward: "on"
    ForwardPort: 8443
`, []string{"t.yaml:16: Listeners[0].ForwardPort: 8443: no https listener on that port"}},
		{"reserved udp port", `
  - ListenerProtocol: udp
    ListenerPort: 4789
    BackendServerPort: 80
    HealthCheck: "off"
`, []string{"t.yaml:14: Listeners[0].ListenerPort: 4789 reserved for udp (250, 4789, 4790)"}},

		// Every problem at once, each at its own line.
		{"two ranges in one listener", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
    EstablishedTimeout: 5
    PersistenceTimeout: 9999
`, []string{
			"t.yaml:16: Listeners[0].EstablishedTimeout: 5 out of range 10–900 (seconds)",
			"t.yaml:17: Listeners[0].PersistenceTimeout: 9999 out of range 0–3600 (seconds)",
		}},
		{"reserved udp port and health check", `
  - ListenerProtocol: udp
    ListenerPort: 4789
    BackendServerPort: 80
`, []string{
			"t.yaml:13: Listeners[0].HealthCheckReq: required for udp health checks (or HealthCheck: \"off\")",
			"t.yaml:13: Listeners[0].HealthCheckExp: required for udp health checks (or HealthCheck: \"off\")",
			"t.yaml:14: Listeners[0].ListenerPort: 4789 reserved for udp (250, 4789, 4790)",
		}},
		{"acl family and another listener", `
  - ListenerProtocol: tcp
    ListenerPort: 9000
    BackendServerPort: 80
    AclStatus: "on"
    AclType: white
    AclId: acl-6
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    RequestTimeout: 181
`, []string{
			`t.yaml:18: Listeners[0].AclId: "acl-6": an ipv6 ACL cannot bind to a listener on 127.0.0.1 (ListenAddress)`,
			"t.yaml:22: Listeners[1].RequestTimeout: 181 out of range 1–180 (seconds)",
		}},

		// Values as typed, one template, no library prefixes.
		{"cookie timeout as typed", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    StickySession: "on"
    CookieTimeout: 86401
`, []string{"t.yaml:17: Listeners[0].CookieTimeout: 86401 out of range 1–86400 (seconds)"}},
		{"rule domain at the rule", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    Rules:
      - {Domain: "a..example.com", Url: /x, VServerGroupId: vg}
      - {Url: api, VServerGroupId: vg}
`, []string{
			`t.yaml:17: Listeners[0].Rules[0].Domain: "a..example.com": empty label`,
			`t.yaml:18: Listeners[0].Rules[1].Url: "api": want a path starting with /`,
		}},

		// An explicit 0 is a value like any other; only an omitted field
		// takes the default.
		{"explicit zeros", `
  - ListenerProtocol: http
    ListenerPort: 0
    BackendServerPort: 80
    IdleTimeout: 0
    RequestTimeout: 0
    HealthCheckInterval: 0
    HealthCheckConnectTimeout: 0
    Bandwidth: 0
    StickySession: "on"
    CookieTimeout: 0
`, []string{
			"t.yaml:14: Listeners[0].ListenerPort: 0 out of range 1–65535",
			"t.yaml:16: Listeners[0].IdleTimeout: 0 out of range 1–60 (seconds)",
			"t.yaml:17: Listeners[0].RequestTimeout: 0 out of range 1–180 (seconds)",
			"t.yaml:18: Listeners[0].HealthCheckInterval: 0 out of range 1–50 (seconds)",
			"t.yaml:19: Listeners[0].HealthCheckConnectTimeout: 0 out of range 1–300 (seconds)",
			"t.yaml:20: Listeners[0].Bandwidth: 0 out of range -1 (unlimited) or 1–5120 (Mbps)",
			"t.yaml:22: Listeners[0].CookieTimeout: 0 out of range 1–86400 (seconds)",
		}},
		{"port omitted", `
  - ListenerProtocol: tcp
    BackendServerPort: 80
`, []string{"t.yaml:13: Listeners[0].ListenerPort: required"}},

		// PROXY protocol is for tcp and udp, and v1 for tcp only.
		{"proxy protocol on http", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    ProxyProtocol: v2
  - ListenerProtocol: udp
    ListenerPort: 9001
    BackendServerPort: 80
    HealthCheck: "off"
    ProxyProtocol: v1
`, []string{
			"t.yaml:16: Listeners[0].ProxyProtocol: only for tcp and udp listeners",
			`t.yaml:21: Listeners[1].ProxyProtocol: "v1": want off or v2 on udp listeners`,
		}},
		{"http2 requests per connection", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    Http2MaxRequestsPerConnection: 500
  - ListenerProtocol: https
    ListenerPort: 8443
    BackendServerPort: 80
    ServerCertificateId: demo
    Http2MaxRequestsPerConnection: 0
`, []string{
			"t.yaml:16: Listeners[0].Http2MaxRequestsPerConnection: only for https listeners",
			"t.yaml:21: Listeners[1].Http2MaxRequestsPerConnection: 0 out of range 1–2147483647 (requests)",
		}},
		// HTTP/3: https only, TLS 1.3, its udp port free.
		{"http3", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    EnableHttp3: "on"
  - ListenerProtocol: https
    ListenerPort: 8443
    BackendServerPort: 80
    ServerCertificateId: demo
    EnableHttp3: "on"
  - ListenerProtocol: https
    ListenerPort: 8444
    BackendServerPort: 80
    ServerCertificateId: demo
    TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3
    EnableHttp3: "on"
  - ListenerProtocol: udp
    ListenerPort: 8444
    BackendServerPort: 80
    HealthCheck: "off"
`, []string{
			"t.yaml:16: Listeners[0].EnableHttp3: only for https listeners",
			"t.yaml:21: Listeners[1].EnableHttp3: HTTP/3 needs TLS 1.3, and TLSCipherPolicy tls_cipher_policy_1_0 (the default) has none: use one with TLS 1.3, such as tls_cipher_policy_1_2_strict_with_1_3",
			"t.yaml:29: Listeners[3].ListenerPort: 8444 already used by Listeners[2] (line 22) for HTTP/3 (EnableHttp3)",
		}},
		{"http3 after a udp listener", `
  - ListenerProtocol: udp
    ListenerPort: 8443
    BackendServerPort: 80
    HealthCheck: "off"
  - ListenerProtocol: https
    ListenerPort: 8443
    BackendServerPort: 80
    ServerCertificateId: demo
    TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3
    EnableHttp3: "on"
`, []string{
			"t.yaml:22: Listeners[1].EnableHttp3: HTTP/3 needs udp port 8443, already used by Listeners[0] (line 13)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantConfigErrors(t, tt.listeners, tt.want)
		})
	}
}

func TestServerErrors(t *testing.T) {
	data := `BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1, Weight: 101}
  - {ServerId: a, ServerIp: not-an-ip}
AccessControlLists:
  - AclId: acl-1
    AclEntrys:
      - {AclEntryIP: 10.0.0.1/8}
Listeners:
  - {ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80}
`
	f, err := Parse("s.yaml", ".", []byte(data))
	if err == nil {
		_, err = planFile(f, testEnv(t))
	}
	want := []string{
		"s.yaml:2: BackendServers[0].Weight: 101 out of range 0–100",
		`s.yaml:3: BackendServers[1].ServerId: "a" already used at line 2`,
		`s.yaml:3: BackendServers[1].ServerIp: "not-an-ip": not an IP address`,
	}
	if err == nil || !equal(strings.Split(err.Error(), "\n"), want) {
		t.Fatalf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	// With the servers fixed, the ACL entry is the problem.
	data = strings.Replace(data, "Weight: 101", "Weight: 100", 1)
	data = strings.Replace(data, "{ServerId: a, ServerIp: not-an-ip}", "{ServerId: b, ServerIp: 127.0.0.2}", 1)
	f, err = Parse("s.yaml", ".", []byte(data))
	if err == nil {
		_, err = planFile(f, testEnv(t))
	}
	if err == nil || err.Error() != `s.yaml:7: AccessControlLists[0].AclEntrys[0].AclEntryIP: "10.0.0.1/8": host bits set; want 10.0.0.0/8` {
		t.Fatalf("err = %v", err)
	}
}

// A few kilobytes of aliases must not expand to millions of values: the
// budget stops decoding with one problem. Aliases within it still work.
func TestAliasExpansionBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("VServerGroups: [{VServerGroupId: g, BackendServers: [{ServerId: a, ServerIp: 127.0.0.1, Port: 1}]}]\n")
	b.WriteString("Listeners:\n  - {ListenerProtocol: http, ListenerPort: 1, VServerGroupId: g, Rules: &r [")
	b.WriteString(strings.Repeat("{Url: /a, VServerGroupId: g}, ", 1000))
	b.WriteString("]}\n")
	for i := 2; i <= 1000; i++ {
		fmt.Fprintf(&b, "  - {ListenerProtocol: http, ListenerPort: %d, VServerGroupId: g, Rules: *r}\n", i)
	}
	_, err := Parse("a.yaml", ".", []byte(b.String()))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.Contains(ps[0].Msg, "aliases expand the document by over 100000 values") {
		t.Fatalf("err = %.300v, want one problem: aliases expand the document", err)
	}
	ok := "BackendServers: [&a {ServerId: a, ServerIp: 127.0.0.1}]\n" +
		"VServerGroups: [{VServerGroupId: g, BackendServers: [{ServerId: b, ServerIp: 127.0.0.1, Port: 1}]}]\n" +
		"Listeners:\n  - &l {ListenerProtocol: http, ListenerPort: 1, BackendServerPort: 80, Rules: &r [{Url: /a, VServerGroupId: g}]}\n" +
		"  - {ListenerProtocol: http, ListenerPort: 2, BackendServerPort: 80, Rules: *r}\n"
	if _, err := Parse("ok.yaml", ".", []byte(ok)); err != nil {
		t.Fatal(err)
	}
}

// n listeners on one port make n-1 problems, each naming the first.
func TestDuplicatePortsLinear(t *testing.T) {
	const n = 3000
	data := "Listeners:\n" + strings.Repeat("  - {ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80}\n", n)
	_, err := Parse("d.yaml", ".", []byte(data))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != n-1 {
		t.Fatalf("%d problems, want %d", len(ps), n-1)
	}
	if got, want := ps[n-2].String(), fmt.Sprintf("d.yaml:%d: Listeners[%d].ListenerPort: 9000 already used by Listeners[0] (line 2)", n+1, n-1); got != want {
		t.Errorf("last problem = %q, want %q", got, want)
	}
}

// Certificates are PEM files relative to the configuration file.
func TestCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	e := testEnv(t)
	writePEM(t, filepath.Join(dir, "certs", "www.pem"), "CERTIFICATE", e.demoCert.Certificate[0])
	key, err := x509.MarshalPKCS8PrivateKey(e.demoCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "certs", "www-key.pem"), "PRIVATE KEY", key)
	writePEM(t, filepath.Join(dir, "certs", "ca.pem"), "CERTIFICATE", e.demoShopCert.Certificate[0])
	der := e.demoCert.Certificate[0]
	if err := os.WriteFile(filepath.Join(dir, "certs", "www.der"), der, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `ServerCertificates:
  - {ServerCertificateId: www, CertificateFile: certs/www.pem, PrivateKeyFile: certs/www-key.pem}
  - {ServerCertificateId: swapped, CertificateFile: certs/www-key.pem, PrivateKeyFile: certs/www.pem}
  - {ServerCertificateId: der, CertificateFile: certs/www.der, PrivateKeyFile: certs/www-key.pem}
CACertificates:
  - {CACertificateId: ca, CACertificateFile: certs/ca.pem}
BackendServers:
  - {ServerId: a, ServerIp: 127.0.0.1}
Listeners:
  - {ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: www, CACertificateId: ca}
`
	path := filepath.Join(dir, "lb.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = load(path, e)
	want := []string{
		`lb.yaml:3: ServerCertificates[1].CertificateFile: "certs/www-key.pem": PRIVATE KEY: no CERTIFICATE block`,
		fmt.Sprintf(`lb.yaml:4: ServerCertificates[2].CertificateFile: "certs/www.der": %d bytes of binary data: not PEM but binary DER (or PKCS#12); `, len(der)),
	}
	if got := strings.Split(fmt.Sprint(err), "\n"); len(got) != 2 || got[0] != want[0] || !strings.HasPrefix(got[1], want[1]) {
		t.Fatalf("err = %v\nwant:\n%s…", err, strings.Join(want, "\n"))
	}
	cfg = strings.Replace(cfg, "  - {ServerCertificateId: swapped, CertificateFile: certs/www-key.pem, PrivateKeyFile: certs/www.pem}\n", "", 1)
	cfg = strings.Replace(cfg, "  - {ServerCertificateId: der, CertificateFile: certs/www.der, PrivateKeyFile: certs/www-key.pem}\n", "", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := load(path, e)
	if err != nil {
		t.Fatal(err)
	}
	h := p.listeners[0].cfg.HTTP
	if h.Certificate == nil || h.ClientCAs == nil || p.listeners[0].cfg.Protocol != listener.HTTPS {
		t.Fatalf("certificate or CA not loaded")
	}
}

func TestCheckFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-check", "-config", "lb.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("-check lb.yaml: exit %d, stderr %s", code, errb.String())
	}
	if got := out.String(); got != "lb.yaml: ok (5 listeners)\n" {
		t.Errorf("stdout = %q", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("Listeners:\n  - {ListenerProtocol: ftp, ListenerPort: 21, Bandwith: 5}\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"-check", "-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("-check bad.yaml: exit %d, want 1", code)
	}
	want := "bad.yaml:2: Listeners[0].Bandwith: unknown field (did you mean Bandwidth?)\n"
	if errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
	// The demo configuration passes its own check.
	out.Reset()
	if code := run([]string{"-check", "-port-base", "30000"}, &out, &errb); code != 0 {
		t.Fatalf("-check demo: exit %d: %s", code, errb.String())
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Http2MaxRequestsPerConnection reaches the library, and changing it
// replaces the listener on reload (it is fixed while a listener runs).
func TestHttp2MaxRequestsPerConnection(t *testing.T) {
	data := goodBase + `  - {ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: demo, Http2MaxRequestsPerConnection: 5000}
`
	f, p := mustPlan(t, "h.yaml", data)
	if got := p.listeners[0].cfg.HTTP.HTTP2MaxRequestsPerConnection; got != 5000 {
		t.Errorf("HTTP2MaxRequestsPerConnection = %d, want 5000", got)
	}
	changed := f.Listeners[0]
	changed.Http2MaxRequestsPerConnection = 100
	if sameHard(f.Listeners[0], changed) {
		t.Error("a new Http2MaxRequestsPerConnection counts as a live change, want a listener restart")
	}
}

// The start-up table shows each https listener's TLS policy (the default
// one when unset) and each tcp/udp listener's PROXY protocol version;
// suites a policy lists but crypto/tls cannot offer are logged once per
// policy, not once per listener.
func TestStartupTableAndSuites(t *testing.T) {
	data := goodBase + `  - {ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: demo}
  - {ListenerProtocol: https, ListenerPort: 8444, BackendServerPort: 80, ServerCertificateId: demo, TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}
  - {ListenerProtocol: https, ListenerPort: 8445, BackendServerPort: 80, ServerCertificateId: demo, TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}
  - {ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80, ProxyProtocol: v1}
  - {ListenerProtocol: udp, ListenerPort: 9001, BackendServerPort: 80, ProxyProtocol: v2, HealthCheck: "off"}
  - {ListenerProtocol: tcp, ListenerPort: 9002, BackendServerPort: 80, ProxyProtocol: "off"}
`
	_, p := mustPlan(t, "s.yaml", data)
	for i, want := range []string{"policy tls_cipher_policy_1_0,", "policy tls_cipher_policy_1_2_strict_with_1_3,", "", ", proxy v1", ", proxy v2", ""} {
		got := describeListener(p.listeners[i])
		if want != "" && !strings.Contains(got, want) || want == "" && strings.Contains(got, "proxy") {
			t.Errorf("%s: %q, want %q", p.listeners[i].name, got, want)
		}
	}
	var logs bytes.Buffer
	logUnsupportedSuites(slog.New(slog.NewTextHandler(&logs, nil)), p)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{
		"policy=tls_cipher_policy_1_0 suites=ECDHE-ECDSA-AES256-SHA384,ECDHE-RSA-AES256-SHA384,AES256-SHA256",
		"policy=tls_cipher_policy_1_2_strict_with_1_3 suites=ECDHE-ECDSA-AES256-SHA384,ECDHE-RSA-AES256-SHA384,TLS_AES_128_CCM_SHA256,TLS_AES_128_CCM_8_SHA256",
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i := range want {
		if !strings.HasSuffix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want it to end %q", i, lines[i], want[i])
		}
	}
}

// mustPlan parses and plans a configuration that must be valid.
func mustPlan(t *testing.T, name, data string) (*File, *plan) {
	t.Helper()
	f, err := Parse(name, ".", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	p, err := planFile(f, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	return f, p
}

// What only the library knows is reported with everything else: a
// certificate that does not load does not hide the instance's bandwidth
// sum, found on the scratch instance.
func TestPlanGathersLibraryProblems(t *testing.T) {
	data := `Bandwidth: 100
ServerCertificates:
  - {ServerCertificateId: www, CertificateFile: missing.pem, PrivateKeyFile: missing-key.pem}
BackendServers: [{ServerId: a, ServerIp: 127.0.0.1}]
Listeners:
  - {ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: www}
  - {ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80, Bandwidth: 60}
  - {ListenerProtocol: tcp, ListenerPort: 9001, BackendServerPort: 80, Bandwidth: 60}
`
	f, err := Parse("g.yaml", t.TempDir(), []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	_, err = planFile(f, testEnv(t))
	got := strings.Split(fmt.Sprint(err), "\n")
	want := []string{
		`g.yaml:3: ServerCertificates[0].CertificateFile: "missing.pem": no such file or directory`,
		"g.yaml:8: Listeners[2].Bandwidth: ",
	}
	if len(got) != 2 || got[0] != want[0] || !strings.HasPrefix(got[1], want[1]) || strings.Contains(got[1], "listener:") {
		t.Errorf("errors:\n%v\nwant:\n%s…", err, strings.Join(want, "\n"))
	}
}

// The CLB's ranges, which the library packages no longer enforce, are
// refused here at both ends, with the CLB's messages, and their edges are
// accepted.
func TestCLBProfileRanges(t *testing.T) {
	tests := []struct {
		proto, key, extra string
		lo, hi            int // the CLB's range
		rng               string
	}{
		{"tcp", "ListenerPort", "", 1, 65535, "1–65535"},
		{"tcp", "PersistenceTimeout", "", 0, 3600, "0–3600 (seconds)"},
		{"udp", "PersistenceTimeout", "HealthCheck: \"off\"\n    ", 0, 3600, "0–3600 (seconds)"},
		{"tcp", "EstablishedTimeout", "", 10, 900, "10–900 (seconds)"},
		{"tcp", "ConnectionDrainTimeout", "ConnectionDrain: \"on\"\n    ", 10, 900, "10–900 (seconds)"},
		{"udp", "IdleTimeout", "HealthCheck: \"off\"\n    ", 1, 3600, "1–3600 (seconds)"},
		{"http", "IdleTimeout", "", 1, 60, "1–60 (seconds)"},
		{"http", "RequestTimeout", "", 1, 180, "1–180 (seconds)"},
		{"http", "CookieTimeout", "StickySession: \"on\"\n    ", 1, 86400, "1–86400 (seconds)"},
		{"tcp", "Bandwidth", "", 1, 5120, "-1 (unlimited) or 1–5120 (Mbps)"},
		{"tcp", "HealthCheckInterval", "", 1, 50, "1–50 (seconds)"},
		{"tcp", "HealthCheckConnectTimeout", "", 1, 300, "1–300 (seconds)"},
		{"tcp", "HealthyThreshold", "", 2, 10, "2–10"},
		{"tcp", "UnhealthyThreshold", "", 2, 10, "2–10"},
	}
	load := func(t *testing.T, proto, key, extra string, v int) error {
		t.Helper()
		port := 9000
		if key == "ListenerPort" {
			port = v
		}
		yaml := fmt.Sprintf("  - ListenerProtocol: %s\n    ListenerPort: %d\n    BackendServerPort: 80\n    %s", proto, port, extra)
		if key != "ListenerPort" {
			yaml += fmt.Sprintf("%s: %d\n", key, v)
		}
		f, err := Parse("t.yaml", ".", []byte(goodBase+yaml))
		if err == nil {
			_, err = planFile(f, testEnv(t))
		}
		return err
	}
	for _, tt := range tests {
		t.Run(tt.proto+"/"+tt.key, func(t *testing.T) {
			for _, v := range []int{tt.lo - 1, tt.hi + 1} {
				if tt.key == "Bandwidth" && v == 0 {
					v = -2 // -1 is "unlimited"
				}
				err := load(t, tt.proto, tt.key, tt.extra, v)
				want := fmt.Sprintf("Listeners[0].%s: %d out of range %s", tt.key, v, tt.rng)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s %d: error %v, want %q", tt.key, v, err, want)
				}
			}
			for _, v := range []int{tt.lo, tt.hi} {
				if err := load(t, tt.proto, tt.key, tt.extra, v); err != nil {
					t.Errorf("%s %d (the CLB's edge): %v", tt.key, v, err)
				}
			}
		})
	}
	for _, port := range []int{250, 4789, 4790} {
		err := load(t, "udp", "ListenerPort", "HealthCheck: \"off\"\n    ", port)
		want := fmt.Sprintf("Listeners[0].ListenerPort: %d reserved for udp (250, 4789, 4790)", port)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("udp port %d: error %v, want %q", port, err, want)
		}
	}
}

// HashBy and HashKey reach the library as a HashPolicy; the profile keeps
// them to the hash scheduler on http and https and asks HashKey where the
// source names something; the library checks the names.
func TestHashBy(t *testing.T) {
	const web = "{ListenerProtocol: http, ListenerPort: 8080, BackendServerPort: 80, "
	tests := []struct {
		name, listener string
		want           listener.HashPolicy
		err            string // "" = accepted
	}{
		{"header", web + "Scheduler: hash, HashBy: header, HashKey: X-User}", listener.HashPolicy{Header: "X-User"}, ""},
		{"cookie https", "{ListenerProtocol: https, ListenerPort: 8443, BackendServerPort: 80, ServerCertificateId: demo, Scheduler: hash, HashBy: cookie, HashKey: uid}",
			listener.HashPolicy{Cookie: "uid"}, ""},
		{"uri", web + "Scheduler: hash, HashBy: uri}", listener.HashPolicy{Path: true}, ""},
		{"url_param", web + "Scheduler: hash, HashBy: url_param, HashKey: id}", listener.HashPolicy{Query: "id"}, ""},
		{"hash alone", web + "Scheduler: hash}", listener.HashPolicy{}, ""},
		{"ewma", web + "Scheduler: ewma}", listener.HashPolicy{}, ""},
		{"tcp hash", "{ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80, Scheduler: hash}", listener.HashPolicy{}, ""},
		{"udp hash", `{ListenerProtocol: udp, ListenerPort: 9000, BackendServerPort: 80, Scheduler: hash, HealthCheck: "off"}`, listener.HashPolicy{}, ""},
		{"tcp ewma", "{ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80, Scheduler: ewma}", listener.HashPolicy{},
			`Listeners[0].Scheduler: "ewma": want wrr, rr, sch, tch, wlc or hash on tcp listeners`},
		{"without hash", web + "HashBy: uri}", listener.HashPolicy{}, "Listeners[0].HashBy: only with Scheduler hash"},
		{"unknown source", web + "Scheduler: hash, HashBy: body}", listener.HashPolicy{},
			`Listeners[0].HashBy: "body": want header, cookie, uri or url_param`},
		{"key missing", web + "Scheduler: hash, HashBy: header}", listener.HashPolicy{}, "Listeners[0].HashKey: required with HashBy header"},
		{"key with uri", web + "Scheduler: hash, HashBy: uri, HashKey: x}", listener.HashPolicy{}, "Listeners[0].HashKey: not with HashBy uri (the path is hashed)"},
		{"key alone", web + "Scheduler: hash, HashKey: x}", listener.HashPolicy{}, "Listeners[0].HashKey: only with HashBy"},
		{"bad header name", web + `Scheduler: hash, HashBy: header, HashKey: "X User"}`, listener.HashPolicy{},
			`Listeners[0].HashKey: "X User": not a header field name`},
		{"bad parameter name", web + `Scheduler: hash, HashBy: url_param, HashKey: "a&b"}`, listener.HashPolicy{},
			`Listeners[0].HashKey: "a&b": want letters, digits and "-._~"`},
		{"on tcp", "{ListenerProtocol: tcp, ListenerPort: 9000, BackendServerPort: 80, Scheduler: hash, HashBy: uri}", listener.HashPolicy{},
			"Listeners[0].HashBy: only for http and https listeners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("h.yaml", ".", []byte(goodBase+"  - "+tt.listener+"\n"))
			var p *plan
			if err == nil {
				p, err = planFile(f, testEnv(t))
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || strings.Count(err.Error(), "\n") > 0):
				t.Fatalf("error %v, want only %q", err, tt.err)
			case tt.err == "":
				if got := p.listeners[0].cfg.HTTP.HashBy; got != tt.want {
					t.Errorf("HashBy = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
	// HashBy is fixed while a listener runs: a reload replaces it.
	f, _ := mustPlan(t, "h.yaml", goodBase+"  - "+web+"Scheduler: hash, HashBy: header, HashKey: X-User}\n")
	changed := f.Listeners[0]
	changed.HashKey = "X-Tenant"
	if sameHard(f.Listeners[0], changed) {
		t.Error("a new HashKey counts as a live change, want a listener restart")
	}
}
