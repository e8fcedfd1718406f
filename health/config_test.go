package health_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lbkit/lbkit/health"
)

func TestNewRefuses(t *testing.T) {
	udp := func(c health.Config) health.Config {
		c.Kind, c.Request, c.Response = health.KindUDP, "ping", "pong"
		return c
	}
	tests := []struct {
		name    string
		cfg     health.Config
		targets []health.Target
		want    string
	}{
		{"interval short", health.Config{Interval: 500 * time.Microsecond}, nil, `health: Interval 500µs: below 1ms`},
		{"interval negative", health.Config{Interval: -time.Second}, nil, `health: Interval -1s: below 1ms`},
		{"timeout negative", health.Config{Timeout: -time.Second}, nil, `health: Timeout -1s: negative`},
		{"healthy threshold", health.Config{HealthyThreshold: -1}, nil, `health: HealthyThreshold -1: negative`},
		{"unhealthy threshold", health.Config{UnhealthyThreshold: -2}, nil, `health: UnhealthyThreshold -2: negative`},
		{"port", health.Config{Port: 65536}, nil, `health: Port 65536: out of range 1–65535`},
		{"kind", health.Config{Kind: 7}, nil, `health: Kind 7: unknown; want KindTCP, KindHTTP or KindUDP`},
		{"concurrency", health.Config{Concurrency: -1}, nil, `health: Concurrency -1: negative`},
		{"method", health.Config{Kind: health.KindHTTP, Method: "POST"}, nil, `health: Method "POST": unknown; want head or get`},
		{"uri", health.Config{Kind: health.KindHTTP, URI: "health"}, nil, `health: URI "health": does not start with /`},
		{"domain", health.Config{Kind: health.KindHTTP, Domain: "a b"}, nil, `health: Domain "a b": want letters, digits, '-' and '.'`},
		{"domain port", health.Config{Kind: health.KindHTTP, Domain: "a:0"}, nil, `health: Domain "a:0": port out of range 1–65535`},
		{"codes", health.Config{Kind: health.KindHTTP, Codes: 16}, nil, `health: Codes 16: unknown status class bits`},
		{"udp request", health.Config{Kind: health.KindUDP, Response: "pong"}, nil, `health: Request "": required for KindUDP`},
		{"udp response", health.Config{Kind: health.KindUDP, Request: "ping"}, nil, `health: Response "": required for KindUDP`},
		{"passive failures", udp(health.Config{Passive: health.Passive{Failures: -1}}), nil, `health: Passive.Failures -1: negative (0 = off)`},
		{"passive eject", health.Config{Passive: health.Passive{Failures: 5, EjectTime: -time.Second}}, nil, `health: Passive.EjectTime -1s: negative`},
		{"passive max eject", health.Config{Passive: health.Passive{Failures: 5, EjectTime: time.Minute, MaxEjectTime: time.Second}}, nil, `health: Passive.MaxEjectTime 1s: below 1m0s`},
		{"passive percent", health.Config{Passive: health.Passive{Failures: 5, MaxEjectedPercent: 101}}, nil, `health: Passive.MaxEjectedPercent 101: out of range 1–100`},
		{"target addr", health.Config{}, []health.Target{{ID: "a", Addr: "localhost"}}, `health: Addr "localhost": not host:port`},
		{"target port", health.Config{}, []health.Target{{ID: "a", Addr: "127.0.0.1:0"}}, `health: Addr "127.0.0.1:0": port out of range 1–65535`},
		{"target host", health.Config{}, []health.Target{{Addr: ":80"}}, `health: Addr ":80": empty host`},
		{"target duplicate", health.Config{}, []health.Target{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "a", Addr: "127.0.0.1:2"}}, `health: ID "a": appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := health.New(tt.cfg, tt.targets...)
			if err == nil {
				c.Stop()
				t.Fatalf("New = nil error, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("New error = %s, want %s", err, tt.want)
			}
			var ce *health.ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("New error %T is not a *ConfigError", err)
			}
		})
	}
}

// The library takes values beyond the CLB's ranges; the clb example
// enforces those.
func TestNewAcceptsBeyondCLB(t *testing.T) {
	for _, cfg := range []health.Config{
		{Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 1},
		{Interval: 2 * time.Minute, Timeout: 10 * time.Minute, HealthyThreshold: 50, UnhealthyThreshold: 50},
		{Interval: time.Millisecond, Concurrency: 10000},
		{Passive: health.Passive{Failures: 5000, EjectTime: 100 * time.Millisecond, MaxEjectTime: 48 * time.Hour}},
	} {
		c, err := health.New(cfg)
		if err != nil {
			t.Errorf("New(%+v) = %v, want it accepted", cfg, err)
			continue
		}
		c.Stop()
	}
}

func TestDefaults(t *testing.T) {
	c := newChecker(t, health.Config{Kind: health.KindHTTP})
	got := c.Config()
	if got.Interval != 2*time.Second || got.Timeout != 5*time.Second || got.HealthyThreshold != 3 ||
		got.UnhealthyThreshold != 3 || got.Concurrency != 64 || got.Method != "HEAD" || got.URI != "/" ||
		got.Codes != health.Status2xx || got.Passive.Failures != 0 {
		t.Errorf("Config() = %+v, want the defaults of docs/model.md §11", got)
	}
	p := newChecker(t, health.Config{Passive: health.Passive{Failures: 5}}).Config().Passive
	if p.EjectTime != 30*time.Second || p.MaxEjectTime != 300*time.Second || p.MaxEjectedPercent != 10 {
		t.Errorf("Config().Passive = %+v, want 30s, 300s, 10%%", p)
	}
}

func TestUDPTimeoutRaisedToInterval(t *testing.T) {
	tests := []struct {
		name              string
		kind              health.Kind
		interval, timeout time.Duration
		want              time.Duration
	}{
		{"udp raised", health.KindUDP, 10 * time.Second, 3 * time.Second, 10 * time.Second},
		{"udp default raised", health.KindUDP, 0, 0, 5 * time.Second},
		{"udp longer kept", health.KindUDP, 2 * time.Second, 8 * time.Second, 8 * time.Second},
		{"tcp not raised", health.KindTCP, 10 * time.Second, 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker(t, health.Config{Kind: tt.kind, Interval: tt.interval, Timeout: tt.timeout, Request: "q", Response: "r"})
			if got := c.Config().Timeout; got != tt.want {
				t.Errorf("Config().Timeout = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseStatusClasses(t *testing.T) {
	tests := []struct {
		in      string
		want    health.StatusClasses
		wantErr bool
	}{
		{"http_2xx", health.Status2xx, false},
		{"http_2xx,http_3xx", health.Status2xx | health.Status3xx, false},
		{" HTTP_4XX , http_5xx ", health.Status4xx | health.Status5xx, false},
		{"http_2xx,http_2xx", health.Status2xx, false},
		{"", 0, true},
		{"http_2xx,", 0, true},
		{"http_1xx", 0, true},
		{"2xx", 0, true},
	}
	for _, tt := range tests {
		got, err := health.ParseStatusClasses(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseStatusClasses(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	all := health.Status2xx | health.Status3xx | health.Status4xx | health.Status5xx
	for code, want := range map[int]bool{199: false, 200: true, 302: true, 404: true, 599: true, 600: false} {
		if got := all.Match(code); got != want {
			t.Errorf("Match(%d) = %v, want %v", code, got, want)
		}
	}
	if health.Status3xx.Match(200) {
		t.Errorf("Status3xx.Match(200) = true, want false")
	}
}

func TestParseMethodKindURI(t *testing.T) {
	for in, want := range map[string]string{"head": "HEAD", "GET": "GET", "Get": "GET", "post": "", "": ""} {
		got, err := health.ParseMethod(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ParseMethod(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]health.Kind{"tcp": health.KindTCP, "HTTP": health.KindHTTP, "Udp": health.KindUDP} {
		if got, err := health.ParseKind(in); got != want || err != nil {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := health.ParseKind("icmp"); err == nil || err.Error() != `health: Kind "icmp": unknown; want tcp, http or udp` {
		t.Errorf("ParseKind(icmp) error = %v", err)
	}
	for in, ok := range map[string]bool{
		"/": true, "/healthz": true, "/a/b?x=1&y=%20": true, "": false, "health": false,
		"//evil.example/": false, "/a b": false, "/a#frag": false, "/\x00": false, "/é": false,
	} {
		got, err := health.ParseURI(in)
		if (err == nil) != ok || (ok && got != in) {
			t.Errorf("ParseURI(%q) = %q, %v; want ok %v", in, got, err, ok)
		}
	}
}
