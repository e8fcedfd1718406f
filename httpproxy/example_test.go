package httpproxy_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
)

// The handler tier: a proxy mounted in a plain net/http server.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the origin, X-Forwarded-For %s", r.Header.Get("X-Forwarded-For"))
	}))
	defer origin.Close()

	group, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "origin", Addr: origin.Listener.Addr().String()})
	if err != nil {
		log.Fatal(err)
	}
	proxy, err := httpproxy.New(group, httpproxy.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Close()
	front := httptest.NewServer(proxy)
	defer front.Close()

	resp, err := http.Get(front.URL)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello from the origin, X-Forwarded-For 127.0.0.1
}

// Hooks as httputil.ReverseProxy has them: a rewrite of the outgoing
// request and an edit of the response.
func ExampleOptions_hooks() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "path ", r.URL.Path)
	}))
	defer origin.Close()
	group, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "origin", Addr: origin.Listener.Addr().String()})
	if err != nil {
		log.Fatal(err)
	}
	proxy, err := httpproxy.New(group, httpproxy.Options{
		Rewrite: func(r *http.Request) { r.URL.Path = "/v2" + r.URL.Path },
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set("X-Proxied-By", "lbkit")
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer proxy.Close()
	front := httptest.NewServer(proxy)
	defer front.Close()

	resp, err := http.Get(front.URL + "/users")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body), resp.Header.Get("X-Proxied-By"))
	// Output: path /v2/users lbkit
}
