package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/bench/h3load/internal/testcert"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/goleak"
)

// server is an in-process HTTP/3 server on 127.0.0.1 whose certificate the
// CA file at caFile signs (it is self-signed).
type server struct {
	url    string
	caFile string
	hits   atomic.Int64 // requests answered
}

// body is what /1k answers.
var body = bytes.Repeat([]byte("x"), 1024)

func startServer(t *testing.T) *server {
	t.Helper()
	cert := testcert.New(t)
	s := &server{caFile: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(s.caFile, cert.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/1k", func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		w.Write(body)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		http.Error(w, "no", http.StatusServiceUnavailable)
	})
	srv := &http3.Server{
		Handler:   mux,
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert.TLS}}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		pc.Close()
	})
	s.url = "https://" + pc.LocalAddr().String()
	return s
}

// noLeaks checks, after the test's cleanups (it registers first, so it runs
// last), that no goroutine it started is left.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// load runs h3load as main does, with -cacert the server's CA unless
// insecure.
func load(t *testing.T, s *server, path string, insecure bool) *result {
	t.Helper()
	cfg := config{URL: s.url + path, Conns: 2, Streams: 4, Duration: time.Second, Warmup: 200 * time.Millisecond, Timeout: 5 * time.Second, Insecure: insecure}
	if !insecure {
		cfg.CAFile = s.caFile
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(context.Background(), cfg, tc)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestLoadCounts(t *testing.T) {
	noLeaks(t)
	s := startServer(t)
	res := load(t, s, "/1k", false)
	if res.Requests == 0 {
		t.Fatalf("requests = 0, want > 0 (last error %v)", res.LastErr)
	}
	for _, k := range errKinds {
		if res.Errors[k] != 0 {
			t.Errorf("errors_%s = %d, want 0 (last error %v)", k, res.Errors[k], res.LastErr)
		}
	}
	if want := res.Requests * int64(len(body)); res.Bytes != want {
		t.Errorf("bytes = %d, want %d (%d requests × %d)", res.Bytes, want, res.Requests, len(body))
	}
	if got := int64(len(res.Latencies)); got != res.Requests {
		t.Errorf("%d latencies, want one per request (%d)", got, res.Requests)
	}
	// The server also answered the warm-up and the requests cut at the
	// deadline, which are not counted.
	if hits := s.hits.Load(); hits < res.Requests {
		t.Errorf("server answered %d requests, fewer than the %d counted", hits, res.Requests)
	}
	p50, p90, p99, mx := res.percentile(.5), res.percentile(.9), res.percentile(.99), res.percentile(1)
	if p50 <= 0 || p50 > p90 || p90 > p99 || p99 > mx {
		t.Errorf("latencies p50 %v p90 %v p99 %v max %v: want 0 < p50 ≤ p90 ≤ p99 ≤ max", p50, p90, p99, mx)
	}
}

func TestLoadErrorKinds(t *testing.T) {
	noLeaks(t)
	s := startServer(t)

	res := load(t, s, "/fail", false)
	if res.Requests != 0 || res.Errors["status"] == 0 {
		t.Errorf("/fail: requests %d, errors_status %d; want 0 and > 0", res.Requests, res.Errors["status"])
	}

	// Without -cacert the self-signed certificate is refused: every
	// handshake fails, a connection error.
	cfg := config{URL: s.url + "/1k", Conns: 1, Streams: 1, Duration: 2 * time.Second, Timeout: time.Second} // long enough for a failed handshake to end inside it on loaded cores
	tc, _ := cfg.tlsConfig()
	res, err := run(context.Background(), cfg, tc)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors["conn"] == 0 {
		t.Errorf("unverifiable certificate: requests %d, errors_conn %d (last error %v); want 0 and > 0", res.Requests, res.Errors["conn"], res.LastErr)
	}

	// -k skips verification.
	if res := load(t, s, "/1k", true); res.Requests == 0 {
		t.Errorf("-k: requests = 0, want > 0 (last error %v)", res.LastErr)
	}
}

// TestOutput checks the names and order bench/cmd/report parses.
func TestOutput(t *testing.T) {
	r := &result{URL: "https://x/1k", Conns: 2, Streams: 3, Seconds: 2, Requests: 4, Bytes: 4096,
		Errors:    map[string]int64{"stream": 1, "status": 2},
		Latencies: []time.Duration{1 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 40 * time.Millisecond}}
	var b strings.Builder
	r.write(&b)
	want := []string{
		"url: https://x/1k", "connections: 2", "streams: 3", "seconds: 2.000", "requests: 4", "req_per_s: 2.0",
		"bytes: 4096", "errors: 3", "errors_status: 2", "errors_timeout: 0", "errors_stream: 1", "errors_conn: 0",
		"errors_other: 0", "latency_p50_ms: 2.000", "latency_p90_ms: 40.000", "latency_p99_ms: 40.000", "latency_max_ms: 40.000",
	}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for i := 0; sc.Scan(); i++ {
		if i >= len(want) || sc.Text() != want[i] {
			t.Fatalf("output line %d = %q, want the lines\n%s\ngot\n%s", i+1, sc.Text(), strings.Join(want, "\n"), b.String())
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config
		want string
	}{
		{"http URL", config{URL: "http://x/", Conns: 1, Streams: 1, Duration: time.Second, Timeout: time.Second}, `-url "http://x/" is not an https URL`},
		{"no conns", config{URL: "https://x/", Conns: 0, Streams: 1, Duration: time.Second, Timeout: time.Second}, "-c 0: want at least 1"},
		{"no streams", config{URL: "https://x/", Conns: 1, Streams: 0, Duration: time.Second, Timeout: time.Second}, "-m 0: want at least 1"},
		{"no duration", config{URL: "https://x/", Conns: 1, Streams: 1, Timeout: time.Second}, "-d 0s, -warmup 0s, -timeout 1s: want positive durations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.validate(); err == nil || err.Error() != tc.want {
				t.Errorf("validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
