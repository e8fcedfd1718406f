package listener_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
	proxyproto "github.com/pires/go-proxyproto"
)

// An HTTP listener behind a balancer on 127.0.0.1 that sends PROXY
// headers: the backend gets the real client the header names in
// X-Forwarded-For.
func ExampleAcceptProxy() {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client %s", r.Header.Get("X-Forwarded-For"))
	}))
	defer web.Close()
	group, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "web", Addr: web.Listener.Addr().String()})
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer inst.Stop(ctx)
	l, err := inst.Add(listener.Config{Protocol: listener.HTTP, Host: "127.0.0.1", Group: group,
		AcceptProxy: listener.AcceptProxy{From: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Required: true}})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The front balancer: a PROXY v2 header, then the client's request.
	c, err := net.DialTimeout("tcp", l.Addrs()[0].String(), 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a lost answer fails, not hangs
	proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 4242},
		&net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 80}).WriteTo(c)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body := make([]byte, 64)
	n, _ := resp.Body.Read(body)
	fmt.Println(string(body[:n]))
	// Output: client 203.0.113.7
}
