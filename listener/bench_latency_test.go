package listener

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// BenchmarkHTTPLatencySchedulers measures what a client sees when one of
// three backends slows down: every backend answers in 1 ms until half the
// requests are sent, then one answers in 10 ms. Clients, each with one
// request in flight, send latencyRequests GETs through an HTTP listener
// per iteration, after latencyWarmup unmeasured ones that open the
// connections and give every scheduler its start. p50-ms to p99-ms are
// the client-side latency percentiles over every measured request, per
// scheduler; slow-% is the slow backend's share of the requests after it
// slowed down. A scheduler that learns from outcomes sends it little; one
// that does not sends it its share.
//
// Two kinds of backend, as sub-benchmark names say:
//
//   - sleep: a handler that sleeps its service time, any number at once,
//     so a backend's latency does not grow with its load. This is the
//     case where weighing latency by requests in flight (ewma's cost)
//     overrates a busy fast backend.
//   - pool: a server with latencyWorkers workers; a request waits for a
//     free one, then holds it for the service time, so latency grows
//     with load and the slow backend has a tenth of a fast one's
//     capacity, as a real server's would be.
//
// and two loads: 4 clients (about one request in flight per backend) and
// 16 (more than the three pools' workers together).
func BenchmarkHTTPLatencySchedulers(b *testing.B) {
	for _, kind := range []string{"sleep", "pool"} {
		for _, clients := range []int{4, 16} {
			for _, name := range []string{balancer.NameEWMA, balancer.NameWRR, balancer.NameWLC} {
				b.Run(fmt.Sprintf("%s/clients=%d/%s", kind, clients, name), func(b *testing.B) {
					s, err := balancer.ParseScheduler(name)
					if err != nil {
						b.Fatal(err)
					}
					workers := 0
					if kind == "pool" {
						workers = latencyWorkers
					}
					benchLatency(b, s, clients, workers)
				})
			}
		}
	}
}

const (
	latencyWarmup   = 300
	latencyRequests = 3000
	latencyWorkers  = 4
	latencyFast     = time.Millisecond
	latencySlow     = 10 * time.Millisecond
)

// latencyBackend is one backend of the benchmark: it answers after its
// service time, with a pool of workers if workers is not nil.
type latencyBackend struct {
	delay   atomic.Int64
	workers chan struct{} // a token per busy worker; nil for no limit
}

func (lb *latencyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if lb.workers != nil {
		select {
		case lb.workers <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-lb.workers }()
	}
	time.Sleep(time.Duration(lb.delay.Load()))
	io.WriteString(w, "ok")
}

func benchLatency(b *testing.B, s balancer.Scheduler, clients, workers int) {
	var backends [3]*latencyBackend
	var bs []balancer.Backend
	for i := range backends {
		lb := &latencyBackend{}
		if workers > 0 {
			lb.workers = make(chan struct{}, workers)
		}
		lb.delay.Store(int64(latencyFast))
		backends[i] = lb
		srv := httptest.NewServer(lb)
		defer srv.Close()
		bs = append(bs, balancer.Backend{ID: string(rune('a' + i)), Addr: srv.Listener.Addr().String()})
	}
	g, err := balancer.New(balancer.Config{Scheduler: s}, bs...)
	if err != nil {
		b.Fatal(err)
	}
	in, err := NewInstance(InstanceConfig{ID: "lb-bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { in.Stop(within(b, 10*time.Second)) }()
	l, err := in.Add(Config{Protocol: HTTP, Host: "127.0.0.1", Group: g})
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + listenerAddr(l) + "/"
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	// send sends n requests from the clients and returns their
	// latencies; halfway, if slowdown is set, it calls it.
	send := func(n int, slowdown func()) []time.Duration {
		var (
			sent atomic.Int64
			mu   sync.Mutex
			all  []time.Duration
			wg   sync.WaitGroup
		)
		for range clients {
			wg.Go(func() {
				var mine []time.Duration
				for {
					k := sent.Add(1)
					if k > int64(n) {
						break
					}
					if k == int64(n/2) && slowdown != nil {
						slowdown()
					}
					start := time.Now()
					resp, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET = %d, want 200", resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		return all
	}

	slow, _ := g.Member("c")
	var (
		all       []time.Duration
		slowAfter uint64 // the slow backend's requests after the slowdown
	)
	send(latencyWarmup, nil)
	b.ResetTimer()
	for range b.N {
		for _, lb := range backends {
			lb.delay.Store(int64(latencyFast))
		}
		var atSlowdown uint64
		all = append(all, send(latencyRequests, func() {
			atSlowdown = slow.Total()
			backends[2].delay.Store(int64(latencySlow))
		})...)
		slowAfter += slow.Total() - atSlowdown
	}
	b.StopTimer()
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(slowAfter)/float64(b.N*latencyRequests/2)*100, "slow-%")
}
