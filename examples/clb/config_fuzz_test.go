package main

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzDeadline bounds one input: load, validate and plan of a
// configuration take microseconds, so a slow input is a hang.
const fuzzDeadline = 10 * time.Second

// FuzzConfig feeds any bytes to the configuration loader. Parse must not
// panic or hang; it returns either Problems, each in this file and in
// line order, or a File that validates again cleanly. A File whose PEM
// paths stay in the fuzz directory is also planned and checked on a
// scratch instance, which opens no sockets.
func FuzzConfig(f *testing.F) {
	seeds, _ := filepath.Glob("*.yaml")
	bench, _ := filepath.Glob(filepath.Join("..", "..", "bench", "configs", "clb-*.yaml"))
	seeds = append(seeds, bench...)
	more, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	seeds = append(seeds, more...)
	if len(seeds) < 2 {
		f.Fatalf("found %d seed configurations, want lb.yaml and bench/configs/clb-*.yaml", len(seeds))
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		// The bench configurations name their PEM files under @WORK@.
		f.Add([]byte(strings.ReplaceAll(string(data), "@WORK@/", "")))
	}
	f.Add([]byte(`{"BackendServers": [{"ServerId": "a", "ServerIp": "::1"}],
 "Listeners": [{"ListenerProtocol": "udp", "ListenerPort": 53, "BackendServerPort": 53,
  "HealthCheckReq": "ping", "HealthCheckExp": "pong", "Scheduler": "qch"}]}`))
	f.Add([]byte(`ServerCertificates:
  - {ServerCertificateId: www, CertificateFile: cert.pem, PrivateKeyFile: key.pem}
CACertificates:
  - {CACertificateId: ca, CACertificateFile: cert.pem}
VServerGroups:
  - {VServerGroupId: vg, BackendServers: [&s {ServerId: a, ServerIp: 127.0.0.1, Port: 80, Weight: 0}]}
Listeners:
  - {ListenerProtocol: https, ListenerPort: 443, VServerGroupId: vg, ServerCertificateId: www, CACertificateId: ca,
     DomainExtensions: [{Domain: "*.example.com", ServerCertificateId: www}]}
  - {ListenerProtocol: http, ListenerPort: 80, ListenerForward: "on", ForwardPort: 443}
`))
	f.Add([]byte("Listeners: [{ListenerProtocol: tcp, Bandwith: 5}]\n"))
	f.Add([]byte("Listeners: [{ListenerProtocol: https, ListenerPort: 443, ServerCertificateId: demo, EnableHttp3: \"on\", Http3MaxHandshakes: 64,\n  TLSCipherPolicy: tls_cipher_policy_1_2_strict_with_1_3}]\n"))
	// Aliases over the expansion budget (TestAliasExpansionBounded).
	f.Add([]byte("x: &r [" + strings.Repeat("{Url: /a}, ", 400) + "]\nListeners: [" +
		strings.Repeat("{Rules: *r}, ", 400) + "]\n"))

	e, err := newEnv(nil)
	if err != nil {
		f.Fatal(err)
	}
	e.log = discardLogger()
	dir := f.TempDir()
	key, err := x509.MarshalPKCS8PrivateKey(e.demoCert.PrivateKey)
	if err != nil {
		f.Fatal(err)
	}
	writePEM(f, filepath.Join(dir, "cert.pem"), "CERTIFICATE", e.demoCert.Certificate[0])
	writePEM(f, filepath.Join(dir, "key.pem"), "PRIVATE KEY", key)

	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			checkConfig(t, e, dir, data)
		}()
		select {
		case <-done:
		case <-time.After(fuzzDeadline):
			t.Fatalf("loading %d bytes took over %v", len(data), fuzzDeadline)
		}
	})
}

// checkConfig loads data as a configuration file in dir and checks what
// FuzzConfig promises. It runs on its own goroutine, so it reports with
// Error and returns.
func checkConfig(t *testing.T, e *env, dir string, data []byte) {
	const name = "fuzz.yaml"
	file, err := Parse(name, dir, data)
	if err != nil {
		checkProblems(t, name, "Parse", err)
		if file != nil {
			t.Errorf("Parse returned a File and an error")
		}
		return
	}
	if file == nil {
		t.Errorf("Parse returned neither a File nor an error")
		return
	}
	again := &problems{file: name}
	file.validate(again)
	if err := again.err(); err != nil {
		t.Errorf("a parsed File fails validate:\n%v", err)
		return
	}
	for _, p := range pemPaths(file) {
		if !filepath.IsLocal(p) {
			return // the fuzzer must not read arbitrary files (/dev/zero)
		}
	}
	p, err := planFile(file, e)
	if err != nil {
		checkProblems(t, name, "planFile", err)
		return
	}
	if len(p.listeners) != len(file.Listeners) {
		t.Errorf("planFile: %d listeners planned, want %d", len(p.listeners), len(file.Listeners))
	}
}

// checkProblems checks that err is a non-empty Problems of file name in
// line order.
func checkProblems(t *testing.T, name, fn string, err error) {
	var ps Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		t.Errorf("%s: error %T %q, want non-empty Problems", fn, err, err)
		return
	}
	for i, p := range ps {
		if p.File != name || p.Line < 0 || p.Msg == "" {
			t.Errorf("%s: problem %d = %+v, want file %s, line >= 0, a message", fn, i, p, name)
		}
		if i > 0 && p.Line < ps[i-1].Line {
			t.Errorf("%s: problem %d at line %d after line %d", fn, i, p.Line, ps[i-1].Line)
		}
	}
}

func pemPaths(f *File) []string {
	var ps []string
	for _, sc := range f.ServerCertificates {
		ps = append(ps, sc.CertificateFile, sc.PrivateKeyFile)
	}
	for _, ca := range f.CACertificates {
		ps = append(ps, ca.CACertificateFile)
	}
	return ps
}
