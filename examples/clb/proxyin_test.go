package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

func TestProxyInConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, listeners string
		want            []string
	}{
		{"protocols", `
  - {ListenerProtocol: udp, ListenerPort: 9001, BackendServerPort: 80, HealthCheck: "off", ProxyProtocolFrom: [10.0.0.0/8]}
  - {ListenerProtocol: tcp, ListenerPort: 9002, BackendServerPort: 80, TrustedProxies: [10.0.0.0/8]}
`, []string{
			"t.yaml:13: Listeners[0].ProxyProtocolFrom: only for tcp, http and https listeners",
			"t.yaml:14: Listeners[1].TrustedProxies: only for http and https listeners",
		}},
		{"values", `
  - ListenerProtocol: http
    ListenerPort: 8080
    BackendServerPort: 80
    ProxyProtocolFrom: [10.0.0.0/8, 10.0.0.300]
    ProxyProtocolRequired: maybe
    TrustedProxies: [fe80::/10, lb.example]
  - {ListenerProtocol: tcp, ListenerPort: 9002, BackendServerPort: 80, ProxyProtocolRequired: "off"}
`, []string{
			`t.yaml:16: Listeners[0].ProxyProtocolFrom: "10.0.0.300": not an IP prefix (10.0.0.0/8) or address`,
			`t.yaml:17: Listeners[0].ProxyProtocolRequired: "maybe": want on or off`,
			`t.yaml:18: Listeners[0].TrustedProxies: "lb.example": not an IP prefix (10.0.0.0/8) or address`,
			"t.yaml:19: Listeners[1].ProxyProtocolRequired: needs ProxyProtocolFrom, the balancers in front",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantConfigErrors(t, tt.listeners, tt.want)
		})
	}
}

// wantConfigErrors checks that the good base with listeners appended is
// refused with exactly the problems want.
func wantConfigErrors(t *testing.T, listeners string, want []string) {
	t.Helper()
	f, err := Parse("t.yaml", ".", []byte(goodBase+strings.TrimPrefix(listeners, "\n")))
	if err == nil {
		_, err = planFile(f, testEnv(t))
	}
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if got := strings.Split(err.Error(), "\n"); !equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestProxyIn: a clb behind a balancer on 127.0.0.1 that sends PROXY
// headers: the http listener's backend gets the real client in
// X-Forwarded-For, and with the front in TrustedProxies too, the client
// its X-Forwarded-For names.
func TestProxyIn(t *testing.T) {
	base := portBase(t)
	path := filepath.Join(t.TempDir(), "lb.yaml")
	cfg := strings.NewReplacer("HTTP", strconv.Itoa(base+offHTTP), "BH1", strconv.Itoa(base+offBackendHTTP),
		"BH2", strconv.Itoa(base+offBackendHTTP+1), "BH3", strconv.Itoa(base+offBackendHTTP+2), "TCP", strconv.Itoa(base+offTCP),
		"BE", strconv.Itoa(base+offBackendEcho), "WA", "100").Replace(reloadConfig)
	cfg = strings.Replace(cfg, `Scheduler: wrr,`, `Scheduler: wrr, ProxyProtocolFrom: [127.0.0.1], TrustedProxies: [203.0.113.0/24],`, 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startClb(t, "-config", path, "-demo-backends", "-port-base", strconv.Itoa(base))
	defer p.stop(t)
	for _, tc := range []struct{ xff, want string }{
		{"", "203.0.113.7"},
		{"X-Forwarded-For: 198.51.100.9\r\n", "198.51.100.9"},
	} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", base+offHTTP))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		h := proxyproto.HeaderProxyFromAddrs(1, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 4242}, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 80})
		h.WriteTo(c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"+tc.xff+"Connection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if !strings.Contains(string(body), "X-Forwarded-For: "+tc.want+"\n") {
			t.Errorf("with %q the backend answered %q, want X-Forwarded-For: %s", tc.xff, body, tc.want)
		}
	}
}
