package listener_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/session"
)

// The README's "Use it" program: an HTTP listener on an ephemeral port
// balancing two backends 2:1, with cookie persistence. The body of this
// function is the README's snippet, word for word (internal/repotest
// checks it).
func Example_readme() {
	backend := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, name)
		}))
	}
	a, b := backend("a"), backend("b")
	defer a.Close()
	defer b.Close()

	group, err := balancer.New(balancer.Config{Scheduler: balancer.WeightedRoundRobin()},
		balancer.Backend{ID: "a", Addr: a.Listener.Addr().String()}, // Weight 0: the default, 100
		balancer.Backend{ID: "b", Addr: b.Listener.Addr().String(), Weight: 50},
	)
	if err != nil {
		log.Fatal(err)
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-1"})
	if err != nil {
		log.Fatal(err)
	}
	l, err := inst.Add(listener.Config{
		Protocol: listener.HTTP,
		Host:     "127.0.0.1", // Port 0: an ephemeral port, which l.Addrs reports
		Group:    group,       // live: Add, Remove, SetWeight, SetState, SetHealthy
		HTTP:     listener.HTTPOptions{Options: httpproxy.Options{StickySession: &session.Config{}}},
	})
	if err != nil {
		log.Fatal(err)
	}

	answers := map[string]int{}
	for range 3 { // no cookie sent back: each request is a new pick
		resp, err := http.Get("http://" + l.Addrs()[0].String() + "/")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers[fmt.Sprint(resp.StatusCode, " ", string(body), " ", resp.Cookies()[0].Name)]++
	}
	fmt.Println(answers)
	http.DefaultClient.CloseIdleConnections()
	fmt.Println(inst.Stop(context.Background()))
	// Output:
	// map[200 a SERVERID:2 200 b SERVERID:1]
	// <nil>
}
