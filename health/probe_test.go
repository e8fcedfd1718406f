package health_test

import (
	"context"
	"errors"
	"github.com/lbkit/lbkit/internal/leakcheck"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
)

// probeOnce checks addr once with cfg (its timeout cut to 300ms) and
// returns the result.
func probeOnce(t *testing.T, cfg health.Config, addr string) health.Result {
	t.Helper()
	c := newChecker(t, cfg, health.Target{ID: "b", Addr: addr})
	health.SetTimeoutForTest(c, 300*time.Millisecond)
	res := round(t, c)
	if len(res) != 1 {
		t.Fatalf("CheckNow returned %d results, want 1", len(res))
	}
	return res[0]
}

func TestTCPProbe(t *testing.T) {
	leakcheck.Check(t)
	open, accepted := tcpServer(t, false)
	hang, _ := tcpServer(t, true)
	tests := []struct {
		name, addr, want string
	}{
		{"accepts", open, "ok"},
		{"accepts then hangs", hang, "ok"},
		{"refused", closedTCP(t), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := probeOnce(t, health.Config{}, tt.addr); r.Reason != tt.want {
				t.Errorf("probe %s: Reason = %q (%v), want %q", tt.name, r.Reason, r.Err, tt.want)
			}
		})
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
}

func TestTCPProbePortOverride(t *testing.T) {
	leakcheck.Check(t)
	open, _ := tcpServer(t, false)
	port := open[strings.LastIndex(open, ":")+1:]
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	// The target's own port is closed; Port sends the probe to the open one.
	r := probeOnce(t, health.Config{Port: p}, closedTCP(t))
	if r.Err != nil {
		t.Errorf("probe with Port %d: %v, want pass", p, r.Err)
	}
}

func TestHTTPProbe(t *testing.T) {
	leakcheck.Check(t)
	hang, _ := tcpServer(t, true)
	tests := []struct {
		name   string
		status int
		cfg    health.Config
		uri    string
		want   string
	}{
		{"200", 200, health.Config{}, "", "ok"},
		{"302 not followed", 302, health.Config{}, "", "status 302"},
		{"302 with http_3xx", 302, health.Config{Codes: health.Status2xx | health.Status3xx}, "", "ok"},
		{"404", 404, health.Config{}, "", "status 404"},
		{"404 with http_4xx", 404, health.Config{Codes: health.Status4xx}, "", "ok"},
		{"500", 500, health.Config{}, "", "status 500"},
		{"500 with http_5xx", 500, health.Config{Codes: health.Status5xx}, "", "ok"},
		{"200 without http_2xx", 200, health.Config{Codes: health.Status3xx}, "", "status 200"},
		{"slow", 200, health.Config{}, "/slow", "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, s := httpServer(t, fixed(tt.status))
			cfg := tt.cfg
			cfg.Kind, cfg.URI = health.KindHTTP, tt.uri
			r := probeOnce(t, cfg, addr)
			if r.Reason != tt.want {
				t.Errorf("probe: Reason = %q (%v), want %q", r.Reason, r.Err, tt.want)
			}
			var se *health.StatusError
			if strings.HasPrefix(tt.want, "status") && (!errors.As(r.Err, &se) || se.Code != tt.status) {
				t.Errorf("probe: Err = %v, want a *StatusError with code %d", r.Err, tt.status)
			}
			if n := s.get().hits["/target"]; n != 0 {
				t.Errorf("redirect target hit %d times, want 0 (redirects are not followed)", n)
			}
		})
	}
	t.Run("accepts then hangs", func(t *testing.T) {
		if r := probeOnce(t, health.Config{Kind: health.KindHTTP}, hang); r.Reason != "timeout" {
			t.Errorf("probe: Reason = %q (%v), want timeout", r.Reason, r.Err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		r := probeOnce(t, health.Config{Kind: health.KindHTTP}, closedTCP(t))
		if r.Reason != "connection refused" || !errors.Is(r.Err, syscall.ECONNREFUSED) {
			t.Errorf("probe: Reason = %q (%v), want connection refused", r.Reason, r.Err)
		}
	})
}

func TestHTTPProbeRequest(t *testing.T) {
	leakcheck.Check(t)
	addr, s := httpServer(t, fixed(200))
	tests := []struct {
		name                   string
		cfg                    health.Config
		method, host, uri      string
		wantConns, wantClosing bool
	}{
		{"defaults", health.Config{}, http.MethodHead, "127.0.0.1", "/", true, true},
		{"get, domain, uri", health.Config{Method: "get", Domain: "www.example.com", URI: "/healthz?deep=1"},
			http.MethodGet, "www.example.com", "/healthz?deep=1", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Kind = health.KindHTTP
			c := newChecker(t, cfg, health.Target{Addr: addr})
			before := s.get().conns
			for range 2 {
				if r := round(t, c); r[0].Err != nil {
					t.Fatalf("probe: %v", r[0].Err)
				}
			}
			got := s.get()
			if got.method != tt.method || got.host != tt.host || got.uri != tt.uri {
				t.Errorf("server saw %s Host %s URI %s, want %s Host %s URI %s", got.method, got.host, got.uri, tt.method, tt.host, tt.uri)
			}
			if !got.close {
				t.Errorf("request without Connection: close; want keep-alive off")
			}
			if n := got.conns - before; n != 2 {
				t.Errorf("2 probes opened %d connections, want 2 (a fresh one each)", n)
			}
		})
	}
}

func TestUDPProbe(t *testing.T) {
	leakcheck.Check(t)
	echo := udpServer(t, func(req string) string {
		if req == "ping" {
			return "pong\n"
		}
		return "xyz"
	})
	silent := udpServer(t, nil)
	tests := []struct {
		name, addr, request, want string
	}{
		{"responder", echo, "ping", "ok"},
		{"wrong response", echo, "hello", `wrong response "xyz"`},
		{"silent", silent, "ping", "timeout"},
		{"closed port (ICMP unreachable)", closedUDP(t), "ping", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := health.Config{Kind: health.KindUDP, Request: tt.request, Response: "pong"}
			r := probeOnce(t, cfg, tt.addr)
			if r.Reason != tt.want {
				t.Errorf("probe: Reason = %q (%v), want %q", r.Reason, r.Err, tt.want)
			}
		})
	}
}

func TestCustomProbe(t *testing.T) {
	var gotAddr string
	var deadline bool
	p := health.ProbeFunc(func(ctx context.Context, addr string) error {
		gotAddr = addr
		_, deadline = ctx.Deadline()
		return errors.New("disk full")
	})
	r := probeOnce(t, health.Config{Probe: p, Port: 9100}, "10.0.0.7:80")
	if gotAddr != "10.0.0.7:9100" || !deadline {
		t.Errorf("Probe got addr %q, deadline %v; want 10.0.0.7:9100 with a deadline", gotAddr, deadline)
	}
	if r.Reason != "disk full" {
		t.Errorf("Reason = %q, want %q", r.Reason, "disk full")
	}
}
