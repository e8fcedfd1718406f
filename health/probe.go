package health

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// Probe is one health check of one backend. Probe dials addr (host:port,
// the target's address with Config.Port applied) and returns nil if the
// backend passed. ctx carries the probe's deadline (Config.Timeout); a
// Probe must return soon after ctx is done. A Probe is called from many
// goroutines at once, for different and for the same addresses.
type Probe interface {
	Probe(ctx context.Context, addr string) error
}

// ProbeFunc adapts a function to the Probe interface.
type ProbeFunc func(ctx context.Context, addr string) error

// Probe calls f(ctx, addr).
func (f ProbeFunc) Probe(ctx context.Context, addr string) error { return f(ctx, addr) }

// builtinProbe returns the probe cfg (normalized) selects.
func builtinProbe(cfg Config) (Probe, func()) {
	switch {
	case cfg.Probe != nil:
		return cfg.Probe, func() {}
	case cfg.Kind == KindHTTP:
		p := newHTTPProbe(cfg)
		return p, p.client.CloseIdleConnections
	case cfg.Kind == KindUDP:
		return &udpProbe{req: []byte(cfg.Request), want: cfg.Response}, func() {}
	}
	return tcpProbe{}, func() {}
}

// tcpProbe passes if the backend accepts a TCP connection. It closes with
// a reset, as HAProxy does, so that probes leave no TIME_WAIT sockets.
type tcpProbe struct{}

func (tcpProbe) Probe(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.Close()
}

// httpProbe sends one request on a fresh connection and checks the status
// class. It never follows redirects and never reuses a connection, so each
// probe measures what a new client connection would meet.
type httpProbe struct {
	client *http.Client
	method string
	domain string
	uri    string
	codes  StatusClasses
}

func newHTTPProbe(cfg Config) *httpProbe {
	tr := &http.Transport{
		Proxy:              nil, // probes go to the backend, never through a proxy
		DisableKeepAlives:  true,
		DisableCompression: true,
		DialContext:        (&net.Dialer{}).DialContext,
	}
	return &httpProbe{
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		method: cfg.Method,
		domain: cfg.Domain,
		uri:    cfg.URI,
		codes:  cfg.Codes,
	}
}

func (p *httpProbe) Probe(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, p.method, "http://"+addr+p.uri, nil)
	if err != nil {
		return err
	}
	req.Close = true
	req.Host = p.domain
	if req.Host == "" {
		req.Host, _, _ = net.SplitHostPort(addr)
		if strings.Contains(req.Host, ":") {
			req.Host = "[" + req.Host + "]"
		}
	}
	req.Header.Set("User-Agent", "lbkit-health/1")
	resp, err := p.client.Do(req)
	if err != nil {
		return err // a *url.Error naming the method and URL
	}
	resp.Body.Close()
	if !p.codes.Match(resp.StatusCode) {
		return &StatusError{Code: resp.StatusCode, Want: p.codes}
	}
	return nil
}

// udpProbe sends the request on a connected UDP socket and expects a reply
// that contains want. An ICMP port unreachable surfaces as ECONNREFUSED on
// the read; silence until the deadline is a timeout. Both fail.
type udpProbe struct {
	req  []byte
	want string
}

func (p *udpProbe) Probe(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// Unblock the read if ctx is canceled before its deadline (Stop).
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(p.req); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.Contains(string(buf[:n]), p.want) {
		return &ResponseError{Got: string(buf[:min(n, 64)]), Want: p.want}
	}
	return nil
}
