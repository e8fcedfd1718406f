// Command customscheduler plugs a user-written scheduler into an lbkit
// server group and HTTP listener: "p2c-latency", the power of two random
// choices by observed latency (scheduler.go), which learns each
// request's latency from the listener through Picked.Done.
//
// Without -backends it starts three demo backends that answer after 5, 20
// and 80 ms, sends them some requests through the listener and prints how
// the scheduler spread them: the fast backend gets the most.
//
//	go run ./examples/customscheduler
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
)

// config is what the flags set.
type config struct {
	// Listen is the listener's address, host:port.
	Listen string
	// Backends are host:port entries; if empty, demo backends are
	// started on loopback.
	Backends []string
	// Requests is how many demo requests to send at start-up, 8 at a
	// time; 0 sends none.
	Requests int

	// ready, if set, is called with the listener's address once the
	// demo load is done.
	ready func(addr string)
}

func main() {
	cfg := config{}
	var backends string
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8090", "listener `address` (port 0: a free port, printed at start)")
	flag.StringVar(&backends, "backends", "", "comma-separated backends `host:port`; empty starts demo backends")
	flag.IntVar(&cfg.Requests, "requests", 300, "demo `requests` to send at start-up")
	flag.Parse()
	if backends != "" {
		cfg.Backends = strings.Split(backends, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "customscheduler:", err)
		os.Exit(1)
	}
}

// run serves the listener until ctx is done.
func run(ctx context.Context, cfg config, out io.Writer) error {
	host, p, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("-listen: port %q is not a number", p)
	}

	var backends []balancer.Backend
	if len(cfg.Backends) == 0 {
		bs, stopDemo, err := startDemoBackends()
		if err != nil {
			return err
		}
		defer stopDemo()
		backends = bs
	}
	for _, b := range cfg.Backends {
		b = strings.TrimSpace(b)
		backends = append(backends, balancer.Backend{ID: b, Addr: b, Weight: balancer.DefaultWeight})
	}

	sched := newLatencyScheduler()
	group, err := balancer.New(balancer.Config{Scheduler: sched}, backends...)
	if err != nil {
		return fmt.Errorf("-backends: %w", err)
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{
		ID:     "customscheduler",
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := inst.Add(listener.Config{Protocol: listener.HTTP, Host: host, Port: port, Group: group})
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(l.Port())) // the bound port, for -listen :0 too
	fmt.Fprintf(out, "customscheduler: %s over %d backends on http://%s\n", sched.Name(), len(backends), addr)

	if cfg.Requests > 0 {
		counts, err := load(ctx, "http://"+addr+"/", cfg.Requests, 8)
		if err != nil {
			return err
		}
		var parts []string
		for _, b := range backends {
			parts = append(parts, fmt.Sprintf("%s %d", b.ID, counts[b.ID]))
		}
		fmt.Fprintf(out, "sent %d requests: %s\n", cfg.Requests, strings.Join(parts, ", "))
		parts = parts[:0]
		for _, b := range backends {
			parts = append(parts, fmt.Sprintf("%s %v", b.ID, sched.Estimate(b.ID).Round(100*time.Microsecond)))
		}
		fmt.Fprintf(out, "latency estimates: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(out, "try: curl http://%s/\n", addr)
	if cfg.ready != nil {
		cfg.ready(addr)
	}

	<-ctx.Done()
	fmt.Fprintln(out, "customscheduler: stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inst.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// load sends n GET requests to url, conc at a time, and counts the
// answers by the backend name they start with.
func load(ctx context.Context, url string, n, conc int) (map[string]int, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		errs   []error
		wg     sync.WaitGroup
		next   = make(chan struct{})
	)
	for range conc {
		wg.Go(func() {
			for range next {
				name, err := get(ctx, c, url)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[name]++
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return counts, fmt.Errorf("%d of %d requests failed, first: %w", len(errs), n, errs[0])
	}
	return counts, nil
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	name, _, _ := strings.Cut(string(body), ":")
	return name, nil
}

// startDemoBackends starts three HTTP servers on loopback that answer
// with their name after a fixed delay.
func startDemoBackends() ([]balancer.Backend, func(), error) {
	var (
		servers  []*http.Server
		backends []balancer.Backend
		wg       sync.WaitGroup
	)
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
		wg.Wait()
	}
	delays := map[string]time.Duration{"fast": 5 * time.Millisecond, "medium": 20 * time.Millisecond, "slow": 80 * time.Millisecond}
	names := make([]string, 0, len(delays))
	for name := range delays {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return delays[names[i]] < delays[names[j]] })
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, nil, err
		}
		delay := delays[name]
		srv := &http.Server{
			ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
				fmt.Fprintf(w, "%s: answered after %v\n", name, delay)
			}),
		}
		servers = append(servers, srv)
		wg.Go(func() { srv.Serve(ln) })
		backends = append(backends, balancer.Backend{ID: name, Addr: ln.Addr().String(), Weight: balancer.DefaultWeight})
	}
	return backends, stop, nil
}
