package balancer_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// A gateway of your own on httputil.ReverseProxy: the group picks the
// backend, and Done reports each outcome (feeding least-connections,
// peak-EWMA and passive health).
func Example_gateway() {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	defer a.Close()
	defer b.Close()
	group, _ := balancer.New(balancer.Config{Scheduler: balancer.RoundRobin()},
		balancer.Backend{ID: "a", Addr: a.Listener.Addr().String()},
		balancer.Backend{ID: "b", Addr: b.Listener.Addr().String()},
	)

	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src, _ := netip.ParseAddrPort(r.RemoteAddr)
		p, err := group.Pick(balancer.Key{Src: src})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		start := time.Now()
		(&httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(&url.URL{Scheme: "http", Host: p.Member.Addr()})
				pr.SetXForwarded()
			},
			ModifyResponse: func(*http.Response) error {
				p.Done(balancer.DoneInfo{Latency: time.Since(start)})
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				p.Done(balancer.DoneInfo{Err: err})
				w.WriteHeader(http.StatusBadGateway)
			},
		}).ServeHTTP(w, r)
	}))
	defer gateway.Close()

	answers := map[string]int{}
	for range 4 {
		resp, err := http.Get(gateway.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers[string(body)]++
	}
	for _, m := range group.Members() {
		fmt.Println(m.ID(), "outstanding", m.Outstanding(), "latency known", m.LastLatency() > 0)
	}
	fmt.Println(answers)
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// a outstanding 0 latency known true
	// b outstanding 0 latency known true
	// map[a:2 b:2]
}
