package listener_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/tlspolicy"
	"github.com/quic-go/quic-go/http3"
)

// An HTTPS listener with HTTP3 also answers HTTP/3 on its port (UDP),
// and advertises it to HTTP/1.1 and HTTP/2 clients with Alt-Svc. Its
// TLS policy must allow TLS 1.3.
func ExampleHTTPOptions_http3() {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend got %s, X-Forwarded-Proto %s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer web.Close()
	group, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "web", Addr: web.Listener.Addr().String()})
	cert, roots := selfSigned("default.test")
	policy, _ := tlspolicy.Lookup(tlspolicy.Policy12StrictWith13)

	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	l, err := inst.Add(listener.Config{
		Protocol: listener.HTTPS, Host: "127.0.0.1", Group: group,
		HTTP: listener.HTTPOptions{Certificate: cert, TLSPolicy: policy, HTTP3: true,
			Options: httpproxy.Options{XForwardedProto: true}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	url := "https://" + l.Addrs()[0].String() + "/"
	tc := &tls.Config{RootCAs: roots, ServerName: "default.test"}

	h2 := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	resp, err := (&http.Client{Transport: h2}).Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	h2.CloseIdleConnections()
	fmt.Println(resp.Proto, "Alt-Svc:", resp.Header.Get("Alt-Svc") == fmt.Sprintf(`h3=":%d"; ma=86400`, l.Port()))

	h3 := &http3.Transport{TLSClientConfig: tc}
	defer h3.Close()
	resp, err = (&http.Client{Transport: h3}).Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Proto, string(body))
	fmt.Println("HTTP/3 requests:", l.Stats().HTTP3Requests)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(inst.Stop(ctx))
	// Output:
	// HTTP/2.0 Alt-Svc: true
	// HTTP/3.0 backend got HTTP/1.1, X-Forwarded-Proto https
	// HTTP/3 requests: 1
	// <nil>
}
