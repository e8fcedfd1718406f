package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/exampletest"
	"github.com/lbkit/lbkit/internal/leakcheck"
)

// The proxy with demo backends, for each PROXY protocol setting: requests
// are answered by the healthy backends only, which see the client's own
// address exactly when a PROXY header carries it, and the failing health
// check of demo-c is logged.
func TestTCPProxy(t *testing.T) {
	leakcheck.Check(t)
	for _, pp := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("proxy-protocol=%d", pp), func(t *testing.T) {
			t.Parallel()
			out := &exampletest.Output{}
			addr, stop := start(t, config{
				Listen:         "127.0.0.1:0",
				ProxyProtocol:  pp,
				HealthInterval: time.Second,
			}, out)

			seen := map[string]bool{}
			deadline := time.Now().Add(10 * time.Second)
			for len(seen) < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("backends seen %v after 10s; output:\n%s", seen, out)
				}
				local, body, err := get(addr)
				if err != nil { // no backend healthy yet: the proxy resets
					time.Sleep(50 * time.Millisecond)
					continue
				}
				name, _, _ := strings.Cut(body, ":")
				seen[name] = true
				if name == "demo-c" {
					t.Fatalf("answered by %q: demo-c is down", body)
				}
				gotClient := strings.Contains(body, "client "+local+" ")
				if want := pp != 0; gotClient != want || strings.Contains(body, fmt.Sprintf("PROXY v%d", pp)) != want {
					t.Errorf("GET from %s = %q; want client address and PROXY v%d header: %v", local, body, pp, want)
				}
			}
			for !strings.Contains(out.String(), "demo-c") || !strings.Contains(out.String(), "is unhealthy (connection refused)") {
				if time.Now().After(deadline) {
					t.Fatalf("no health change logged for demo-c; output:\n%s", out)
				}
				time.Sleep(50 * time.Millisecond)
			}
			stop()
			if !strings.Contains(out.String(), "tcpproxy: stopping") {
				t.Errorf("output lacks the stop line:\n%s", out)
			}
		})
	}
}

// get sends one HTTP/1.0 request through the proxy and returns the local
// address it came from and the body.
func get(addr string) (local, body string, err error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: demo\r\n\r\n"); err != nil {
		return "", "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	return c.LocalAddr().String(), string(b), nil
}

// start runs the example in the background (see exampletest.Start).
func start(t *testing.T, cfg config, out io.Writer) (string, func()) {
	return exampletest.Start(t, func(ctx context.Context, ready func(string)) error {
		cfg.ready = ready
		return run(ctx, cfg, out)
	})
}

// Backends given on the command line, host:port[=weight].
func TestTCPProxyBackends(t *testing.T) {
	leakcheck.Check(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web") }))
	defer web.Close()
	addr, stop := start(t, config{
		Listen:         "127.0.0.1:0",
		Backends:       []string{web.Listener.Addr().String() + "=80"},
		HealthInterval: time.Second,
	}, io.Discard)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body, err := get(addr)
		if err == nil {
			if body != "web" {
				t.Fatalf("body %q, want web", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer after 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParseBackend(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		weight   int
		ok       bool
	}{
		{name: "default weight", in: "10.0.0.1:80", weight: 100, ok: true},
		{name: "weight", in: " 10.0.0.1:80=30", weight: 30, ok: true},
		{name: "bad weight", in: "10.0.0.1:80=x"},
		{name: "no port", in: "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseBackend(tc.in)
			if (err == nil) != tc.ok || (tc.ok && b.Weight != tc.weight) {
				t.Errorf("parseBackend(%q) = %+v, %v; want weight %d, ok %v", tc.in, b, err, tc.weight, tc.ok)
			}
		})
	}
}
