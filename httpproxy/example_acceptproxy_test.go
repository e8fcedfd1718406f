package httpproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	proxyproto "github.com/pires/go-proxyproto"
)

// The listener tier behind a balancer on 127.0.0.1 that sends PROXY
// headers: the origin gets the real client the header names in
// X-Forwarded-For.
func ExampleAcceptProxy() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client %s", r.Header.Get("X-Forwarded-For"))
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := proxy.NewServer(ln, httpproxy.ServerConfig{AcceptProxy: httpproxy.AcceptProxy{
		From: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Required: true}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	// The front balancer: a PROXY v2 header, then the client's request.
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 4242},
		&net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 80}).WriteTo(c)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	// Output: client 203.0.113.7
}
