// Command waf puts a small request filter — the kind of thing a web
// application firewall does — in front of an lbkit HTTP listener through
// its HTTPOptions.Middleware hook.
//
// The filter answers 403 to paths that climb out of their directory
// ("../", also percent-encoded), to methods outside an allow-list and to
// oversized header fields, and 429 to a client IP that exceeds its request
// rate (a token bucket per client from golang.org/x/time/rate). Everything
// else goes on to the proxy. Without -backends a demo backend is started.
//
//	go run ./examples/waf
//	curl -i http://127.0.0.1:8080/hello
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

	"golang.org/x/time/rate"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
)

// config is what the flags set.
type config struct {
	// Listen is the listener's address, host:port.
	Listen string
	// Backends are host:port entries; if empty, a demo backend is
	// started on loopback.
	Backends []string
	// Methods is the method allow-list.
	Methods []string
	// MaxHeader is the largest header field (name and value) allowed,
	// in bytes.
	MaxHeader int
	// Rate is the sustained requests per second allowed per client IP,
	// Burst the bucket size.
	Rate  float64
	Burst int

	// ready, if set, is called with the listener's address once it
	// listens.
	ready func(addr string)
}

func main() {
	cfg := config{}
	var backends, methods string
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "listener `address` (port 0: a free port, printed at start)")
	flag.StringVar(&backends, "backends", "", "comma-separated backends `host:port`; empty starts a demo backend")
	flag.StringVar(&methods, "methods", "GET,HEAD,POST", "allowed `methods`, comma-separated")
	flag.IntVar(&cfg.MaxHeader, "max-header", 1024, "largest header field in `bytes` (name and value)")
	flag.Float64Var(&cfg.Rate, "rate", 5, "requests per `second` per client IP, sustained")
	flag.IntVar(&cfg.Burst, "burst", 10, "requests per client IP allowed at once")
	flag.Parse()
	if backends != "" {
		cfg.Backends = strings.Split(backends, ",")
	}
	cfg.Methods = strings.Split(methods, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "waf:", err)
		os.Exit(1)
	}
}

// run serves the filtered HTTP listener until ctx is done.
func run(ctx context.Context, cfg config, out io.Writer) error {
	out = &syncWriter{w: out}
	host, p, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("-listen: port %q is not a number", p)
	}
	if cfg.Rate <= 0 || cfg.Burst < 1 {
		return fmt.Errorf("-rate %v and -burst %d must be positive", cfg.Rate, cfg.Burst)
	}

	var backends []balancer.Backend
	if len(cfg.Backends) == 0 {
		addr, stopDemo, err := startDemoBackend()
		if err != nil {
			return err
		}
		defer stopDemo()
		backends = append(backends, balancer.Backend{ID: "demo", Addr: addr, Weight: balancer.DefaultWeight})
	}
	for _, b := range cfg.Backends {
		b = strings.TrimSpace(b)
		backends = append(backends, balancer.Backend{ID: b, Addr: b, Weight: balancer.DefaultWeight})
	}
	group, err := balancer.New(balancer.Config{}, backends...)
	if err != nil {
		return fmt.Errorf("-backends: %w", err)
	}

	f := newFilter(cfg.Methods, cfg.MaxHeader, rate.Limit(cfg.Rate), cfg.Burst)
	f.log = func(r *http.Request, code int, reason string) {
		fmt.Fprintf(out, "waf: %d %s %s %q: %s\n", code, clientIP(r), r.Method, r.RequestURI, reason)
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{
		ID:     "waf-demo",
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := inst.Add(listener.Config{
		Protocol: listener.HTTP,
		Host:     host,
		Port:     port,
		Group:    group,
		HTTP:     listener.HTTPOptions{Middleware: f.Middleware},
	})
	if err != nil {
		return err
	}

	addr := net.JoinHostPort(host, strconv.Itoa(l.Port())) // the bound port, for -listen :0 too
	u := "http://" + addr
	fmt.Fprintf(out, "waf: listening on %s; methods %s, header fields ≤ %d bytes, %v req/s per client IP (burst %d)\n",
		u, strings.Join(cfg.Methods, ","), cfg.MaxHeader, cfg.Rate, cfg.Burst)
	fmt.Fprintf(out, "passes:  curl -i %s/hello\n", u)
	fmt.Fprintf(out, "403:     curl -i --path-as-is %s/static/../../etc/passwd\n", u)
	fmt.Fprintf(out, "403:     curl -i %s/static/..%%2f..%%2fetc/passwd\n", u)
	fmt.Fprintf(out, "403:     curl -i -X DELETE %s/hello\n", u)
	fmt.Fprintf(out, "403:     curl -i -H \"X-Big: $(head -c %d /dev/zero | tr '\\0' a)\" %s/hello\n", cfg.MaxHeader+1, u)
	fmt.Fprintf(out, "429:     for i in $(seq %d); do curl -s -o /dev/null -w '%%{http_code} ' %s/; done; echo\n", cfg.Burst+2, u)
	if cfg.ready != nil {
		cfg.ready(addr)
	}

	<-ctx.Done()
	fmt.Fprintln(out, "waf: stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inst.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// startDemoBackend starts an HTTP server on loopback that echoes the
// request line and the client address the proxy forwarded.
func startDemoBackend() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend: %s %s (X-Forwarded-For: %s)\n", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"))
		}),
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	return ln.Addr().String(), func() { srv.Close(); wg.Wait() }, nil
}

// syncWriter serializes writes from concurrent requests.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
