// Command tcpproxy is a minimal layer-4 load balancer built on lbkit: a TCP
// listener that spreads connections over its backends by smooth weighted
// round robin, keeps failed backends out with TCP health checks (logging
// every change) and can tell the backends the client's address with the
// PROXY protocol.
//
// Without -backends it starts two demo HTTP backends that report the client
// address they see, and a third "backend" on a closed port, so that one
// health check visibly fails:
//
//	go run ./examples/tcpproxy -proxy-protocol 2
//	curl http://127.0.0.1:8000/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/listener"
)

// config is what the flags set.
type config struct {
	// Listen is the proxy's address, host:port.
	Listen string
	// Backends are host:port[=weight] entries (weight 1–65535, default
	// 100; 0 drains the backend). If empty, demo backends are started on
	// loopback.
	Backends []string
	// ProxyProtocol is 0 (off), 1 or 2.
	ProxyProtocol int
	// HealthInterval is the time between two TCP probes of a backend.
	HealthInterval time.Duration

	// ready, if set, is called with the proxy's address once it listens.
	ready func(addr string)
}

func main() {
	cfg := config{}
	var backends string
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8000", "proxy `address` (port 0: a free port, printed at start)")
	flag.StringVar(&backends, "backends", "", "comma-separated backends `host:port[=weight]`; empty starts demo backends")
	flag.IntVar(&cfg.ProxyProtocol, "proxy-protocol", 0, "PROXY protocol `version` sent to backends: 0 (off), 1 or 2")
	flag.DurationVar(&cfg.HealthInterval, "health-interval", 2*time.Second, "TCP health check `interval` (1s–50s)")
	flag.Parse()
	if backends != "" {
		cfg.Backends = strings.Split(backends, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tcpproxy:", err)
		os.Exit(1)
	}
}

// run serves the proxy until ctx is done, then stops it gracefully.
func run(ctx context.Context, cfg config, out io.Writer) error {
	out = &syncWriter{w: out}
	host, port, err := splitHostPort(cfg.Listen, 0)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}

	var backends []balancer.Backend
	demo := len(cfg.Backends) == 0
	if demo {
		stopDemo, bs, err := startDemoBackends(cfg.ProxyProtocol != 0)
		if err != nil {
			return err
		}
		defer stopDemo()
		backends = bs
	} else {
		for _, s := range cfg.Backends {
			b, err := parseBackend(s)
			if err != nil {
				return fmt.Errorf("-backends: %w", err)
			}
			backends = append(backends, b)
		}
	}

	// With the listener's health check following the group, no member
	// gets a connection before its first health check has passed.
	group, err := balancer.New(balancer.Config{Scheduler: balancer.WeightedRoundRobin()}, backends...)
	if err != nil {
		return err
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{
		ID:     "tcpproxy",
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := inst.Add(listener.Config{
		Name:          "tcpproxy",
		Protocol:      listener.TCP,
		Host:          host,
		Port:          port,
		Group:         group,
		ProxyProtocol: cfg.ProxyProtocol,
		HealthCheck: &health.Config{
			Kind:     health.KindTCP,
			Interval: cfg.HealthInterval,
			Timeout:  time.Second,
			OnChange: func(ev health.Event) {
				state := "unhealthy"
				if ev.Healthy {
					state = "healthy"
				}
				fmt.Fprintf(out, "health: %s %s is %s (%s)\n", ev.ID, ev.Addr, state, ev.Reason)
			},
		},
	})
	if err != nil {
		return err
	}

	addr := net.JoinHostPort(host, strconv.Itoa(l.Port())) // the bound port, for -listen :0 too
	pp := "off"
	if cfg.ProxyProtocol != 0 {
		pp = "v" + strconv.Itoa(cfg.ProxyProtocol)
	}
	fmt.Fprintf(out, "tcpproxy: listening on %s, wrr over %d backends, PROXY protocol %s\n", addr, len(backends), pp)
	for _, b := range backends {
		fmt.Fprintf(out, "  backend %s weight %d\n", b.ID, b.Weight)
	}
	if demo {
		fmt.Fprintf(out, "try: curl http://%s/   (demo-c is a closed port: its health check fails)\n", addr)
	}
	if cfg.ready != nil {
		cfg.ready(addr)
	}

	<-ctx.Done()
	fmt.Fprintln(out, "tcpproxy: stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inst.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// parseBackend reads host:port[=weight]; the ID is host:port. Weight 0
// drains the backend, as in a CLB configuration.
func parseBackend(s string) (balancer.Backend, error) {
	addr, weight, found := strings.Cut(strings.TrimSpace(s), "=")
	b := balancer.Backend{ID: addr, Addr: addr, Weight: balancer.DefaultWeight}
	if found {
		w, err := strconv.Atoi(weight)
		if err != nil {
			return b, fmt.Errorf("backend %q: weight %q is not a number", s, weight)
		}
		b.Weight = w
		if w == 0 {
			b.Weight, b.State = balancer.DefaultWeight, balancer.Drain
		}
	}
	if _, _, err := splitHostPort(addr, 1); err != nil {
		return b, fmt.Errorf("backend %q: %w", s, err)
	}
	return b, nil
}

func splitHostPort(s string, lo int) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < lo || port > 65535 {
		return "", 0, fmt.Errorf("port %q out of range %d–65535", p, lo)
	}
	return host, port, nil
}

type headerKey struct{}

// startDemoBackends starts two HTTP servers on loopback that answer with
// their name and the client address they see (from the PROXY header when
// proxyProtocol is set), and reserves a closed port for a third backend
// whose health check fails.
func startDemoBackends(proxyProtocol bool) (stop func(), _ []balancer.Backend, err error) {
	var (
		servers  []*http.Server
		wg       sync.WaitGroup
		backends []balancer.Backend
	)
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
		wg.Wait()
	}
	for _, b := range []struct {
		name   string
		weight int
	}{{"demo-a", 100}, {"demo-b", 50}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, nil, err
		}
		if proxyProtocol {
			ln = &proxyproto.Listener{
				Listener:          ln,
				ConnPolicy:        func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) { return proxyproto.USE, nil },
				ReadHeaderTimeout: 5 * time.Second,
			}
		}
		name := b.name
		srv := &http.Server{
			ReadHeaderTimeout: 5 * time.Second,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				if pc, ok := c.(*proxyproto.Conn); ok {
					return context.WithValue(ctx, headerKey{}, pc)
				}
				return ctx
			},
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				via := "no PROXY header: this is the proxy's address"
				if pc, ok := r.Context().Value(headerKey{}).(*proxyproto.Conn); ok {
					if h := pc.ProxyHeader(); h != nil {
						via = fmt.Sprintf("from a PROXY v%d header", h.Version)
					}
				}
				fmt.Fprintf(w, "%s: client %s (%s)\n", name, r.RemoteAddr, via)
			}),
		}
		servers = append(servers, srv)
		wg.Go(func() { srv.Serve(ln) })
		backends = append(backends, balancer.Backend{ID: name, Addr: ln.Addr().String(), Weight: b.weight})
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stop()
		return nil, nil, err
	}
	closed.Close()
	backends = append(backends, balancer.Backend{ID: "demo-c", Addr: closed.Addr().String(), Weight: 100})
	return stop, backends, nil
}

// syncWriter serializes writes from the health checker and run.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
