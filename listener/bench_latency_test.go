package listener

import (
	"context"
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
// requests are sent, then one answers in 10 ms. latencyClients clients,
// each with one request in flight, send latencyRequests GETs through an
// HTTP listener per iteration; p50-ms to p99-ms are the client-side
// latency percentiles over every request of every iteration, per
// scheduler; slow-% is the slow backend's share of the requests after it
// slowed down. A scheduler that learns from outcomes sends it little; one
// that does not sends it its share.
func BenchmarkHTTPLatencySchedulers(b *testing.B) {
	for _, name := range []string{balancer.NameEWMA, balancer.NameWRR, balancer.NameWLC} {
		b.Run(name, func(b *testing.B) {
			s, err := balancer.ParseScheduler(name)
			if err != nil {
				b.Fatal(err)
			}
			benchLatency(b, s)
		})
	}
}

const (
	latencyRequests = 3000
	latencyClients  = 16
	latencyFast     = time.Millisecond
	latencySlow     = 10 * time.Millisecond
)

func benchLatency(b *testing.B, s balancer.Scheduler) {
	var delays [3]atomic.Int64
	var bs []balancer.Backend
	for i := range delays {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Duration(delays[i].Load())) // the backend's service time
			io.WriteString(w, "ok")
		}))
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
	defer in.Stop(context.Background())
	l, err := in.Add(Config{Protocol: HTTP, Host: "127.0.0.1", Group: g})
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + listenerAddr(l) + "/"
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: latencyClients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	slow, _ := g.Member("c")
	var (
		all       []time.Duration
		slowAfter uint64 // the slow backend's requests after the switch
	)
	b.ResetTimer()
	for range b.N {
		for i := range delays {
			delays[i].Store(int64(latencyFast))
		}
		var (
			sent   atomic.Int64
			atSwap atomic.Uint64
			mu     sync.Mutex
			wg     sync.WaitGroup
		)
		for range latencyClients {
			wg.Go(func() {
				var mine []time.Duration
				for {
					n := sent.Add(1)
					if n > latencyRequests {
						break
					}
					if n == latencyRequests/2 {
						atSwap.Store(slow.Total())
						delays[2].Store(int64(latencySlow))
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
		slowAfter += slow.Total() - atSwap.Load()
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
