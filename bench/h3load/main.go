// Command h3load is an HTTP/3 load generator: C QUIC connections with M
// requests in flight on each, for a fixed duration after a warm-up, all
// GETs of one URL. It is the HTTP/3 counterpart of h2load -c C -m M for
// bench/run.sh's h3 suite, built with quic-go's http3.Transport at the
// version the library uses (this module's go.mod).
//
//	h3load -url https://127.0.0.1:19643/1k -c 16 -m 16 -d 5s -cacert cert.pem
//
// It prints one figure a line, "name: value", always the same names in the
// same order, for bench/cmd/report to parse:
//
//	url: https://127.0.0.1:19643/1k
//	connections: 16
//	streams: 16
//	seconds: 5.000
//	requests: 123456           (answered with 2xx within the measured window)
//	req_per_s: 24691.2
//	bytes: 126418944           (response bodies)
//	errors: 0                  (the sum of the five kinds below)
//	errors_status: 0           (answered, but not 2xx)
//	errors_timeout: 0          (-timeout passed, or the QUIC handshake or idle timeout)
//	errors_stream: 0           (the stream was reset, e.g. H3_REQUEST_REJECTED)
//	errors_conn: 0             (the connection was closed or could not be made)
//	errors_other: 0
//	latency_p50_ms: 1.234      (request sent to body read, successful requests)
//	latency_p90_ms: 2.345
//	latency_p99_ms: 3.456
//	latency_max_ms: 9.876
//
// A request counts if it ends within the measured window, after the
// warm-up and before the deadline (as wrk counts), so the rate is the
// completions per second of a steady load; those still in flight at the
// deadline are cancelled and not counted. Each connection is its own http3.Transport (one QUIC connection
// and UDP socket each), redialled by the transport if the server closes it.
// The exit status is 1 if no request succeeded.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.URL, "url", "", "`URL` to GET (https)")
	flag.IntVar(&cfg.Conns, "c", 16, "QUIC connections")
	flag.IntVar(&cfg.Streams, "m", 16, "requests in flight on each connection")
	flag.DurationVar(&cfg.Duration, "d", 5*time.Second, "measured duration")
	flag.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured load before it (dials the connections)")
	flag.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.StringVar(&cfg.CAFile, "cacert", "", "PEM `file` of the CA that signs the server's certificate (default: the system's roots)")
	flag.BoolVar(&cfg.Insecure, "k", false, "do not verify the server's certificate")
	flag.Parse()
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "h3load:", err)
		os.Exit(2)
	}
	res, err := run(context.Background(), cfg, tlsConf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "h3load:", err)
		os.Exit(2)
	}
	res.write(os.Stdout)
	if res.Requests == 0 {
		fmt.Fprintf(os.Stderr, "h3load: no request succeeded; last error: %v\n", res.LastErr)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	URL                       string
	Conns, Streams            int
	Duration, Warmup, Timeout time.Duration
	CAFile                    string
	Insecure                  bool
}

func (c config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-url %q is not an https URL", c.URL)
	}
	if c.Conns < 1 {
		return fmt.Errorf("-c %d: want at least 1", c.Conns)
	}
	if c.Streams < 1 {
		return fmt.Errorf("-m %d: want at least 1", c.Streams)
	}
	if c.Duration <= 0 || c.Warmup < 0 || c.Timeout <= 0 {
		return fmt.Errorf("-d %v, -warmup %v, -timeout %v: want positive durations", c.Duration, c.Warmup, c.Timeout)
	}
	return nil
}

// tlsConfig verifies against -cacert's CA, the system's roots, or not at all
// (-k).
func (c config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: c.Insecure}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("-cacert: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cacert %s: no PEM certificate in it", c.CAFile)
		}
	}
	return tc, nil
}

// errKinds are the error counters, in output order.
var errKinds = []string{"status", "timeout", "stream", "conn", "other"}

// classify names the kind of a failed round trip (err non-nil) or of a
// non-2xx answer (err nil).
func classify(err error) string {
	var (
		idle      *quic.IdleTimeoutError
		handshake *quic.HandshakeTimeoutError
		stream    *quic.StreamError
		app       *quic.ApplicationError
		transport *quic.TransportError
		reset     *quic.StatelessResetError
		h3        *http3.Error
	)
	switch {
	case err == nil:
		return "status"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &idle), errors.As(err, &handshake):
		return "timeout"
	case errors.As(err, &stream):
		return "stream"
	case errors.As(err, &app), errors.As(err, &transport), errors.As(err, &reset):
		return "conn"
	case errors.As(err, &h3):
		// An http3.Error that wraps neither: a protocol error on the
		// connection's control or request stream.
		return "conn"
	}
	return "other"
}

// result is one run's figures.
type result struct {
	URL            string
	Conns, Streams int
	Seconds        float64
	Requests       int64
	Bytes          int64
	Errors         map[string]int64
	Latencies      []time.Duration // successful requests, sorted
	LastErr        error
}

// percentile is the q-quantile (0 < q ≤ 1) of the sorted latencies, by the
// nearest-rank method; 0 without any.
func (r *result) percentile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	i := int(q*float64(n)+0.999999999) - 1
	return r.Latencies[min(max(i, 0), n-1)]
}

func (r *result) write(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	var total int64
	for _, k := range errKinds {
		total += r.Errors[k]
	}
	fmt.Fprintf(w, "url: %s\n", r.URL)
	fmt.Fprintf(w, "connections: %d\n", r.Conns)
	fmt.Fprintf(w, "streams: %d\n", r.Streams)
	fmt.Fprintf(w, "seconds: %.3f\n", r.Seconds)
	fmt.Fprintf(w, "requests: %d\n", r.Requests)
	fmt.Fprintf(w, "req_per_s: %.1f\n", float64(r.Requests)/r.Seconds)
	fmt.Fprintf(w, "bytes: %d\n", r.Bytes)
	fmt.Fprintf(w, "errors: %d\n", total)
	for _, k := range errKinds {
		fmt.Fprintf(w, "errors_%s: %d\n", k, r.Errors[k])
	}
	fmt.Fprintf(w, "latency_p50_ms: %s\n", ms(r.percentile(0.50)))
	fmt.Fprintf(w, "latency_p90_ms: %s\n", ms(r.percentile(0.90)))
	fmt.Fprintf(w, "latency_p99_ms: %s\n", ms(r.percentile(0.99)))
	fmt.Fprintf(w, "latency_max_ms: %s\n", ms(r.percentile(1)))
}

// tally is one worker's counts, merged into the result at the end so the
// request loop shares nothing.
type tally struct {
	requests, bytes int64
	errors          map[string]int64
	latencies       []time.Duration
	lastErr         error
}

// run loads cfg.URL for cfg.Warmup, then measures cfg.Duration.
func run(ctx context.Context, cfg config, tlsConf *tls.Config) (*result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	begin := time.Now().Add(cfg.Warmup)
	end := begin.Add(cfg.Duration)
	tallies := make([]tally, cfg.Conns*cfg.Streams)
	transports := make([]*http3.Transport, cfg.Conns)
	var wg sync.WaitGroup
	for c := range cfg.Conns {
		transports[c] = &http3.Transport{TLSClientConfig: tlsConf.Clone()}
		for s := range cfg.Streams {
			t := &tallies[c*cfg.Streams+s]
			t.errors = map[string]int64{}
			wg.Go(func() { worker(ctx, cfg, transports[c], begin, end, t) })
		}
	}
	// Cancel the requests still in flight at the deadline.
	stop := time.AfterFunc(time.Until(end), cancel)
	defer stop.Stop()
	wg.Wait()
	for _, tr := range transports {
		tr.Close()
	}
	res := &result{URL: cfg.URL, Conns: cfg.Conns, Streams: cfg.Streams, Seconds: cfg.Duration.Seconds(), Errors: map[string]int64{}}
	for i := range tallies {
		t := &tallies[i]
		res.Requests += t.requests
		res.Bytes += t.bytes
		for k, n := range t.errors {
			res.Errors[k] += n
		}
		res.Latencies = append(res.Latencies, t.latencies...)
		if t.lastErr != nil {
			res.LastErr = t.lastErr
		}
	}
	slices.Sort(res.Latencies)
	return res, nil
}

// worker sends one request at a time on tr until end, counting those that
// end between begin and end.
func worker(ctx context.Context, cfg config, tr *http3.Transport, begin, end time.Time, t *tally) {
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(end) {
			return
		}
		n, status, err := get(ctx, cfg, tr)
		done := time.Now()
		if done.Before(begin) || done.After(end) || ctx.Err() != nil {
			continue // warm-up, or cut by the deadline
		}
		switch {
		case err == nil && status/100 == 2:
			t.requests++
			t.bytes += n
			t.latencies = append(t.latencies, done.Sub(start))
		case err == nil:
			t.errors[classify(nil)]++
			t.lastErr = fmt.Errorf("status %d", status)
		default:
			t.errors[classify(err)]++
			t.lastErr = err
		}
	}
}

// get sends one GET and reads the whole body; it returns the body's length.
func get(ctx context.Context, cfg config, tr *http3.Transport) (int64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return n, resp.StatusCode, err
}
