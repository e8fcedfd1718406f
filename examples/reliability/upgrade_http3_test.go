package reliability

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeHTTP3 upgrades clb (SIGUSR2) while HTTP/3 clients keep
// requests in flight on the old process's QUIC connections: quick
// GETs, GETs whose backend answers after 200 ms, and 1 MiB downloads,
// each client on a QUIC connection of its own (keep-alive). The fleet
// shares a stateless-reset key, so a process that took a packet of a
// connection it does not hold would reset it. The successor forwards
// the old generation's packets to the old process (package
// quichandoff), and the retiring server leaves its idle connections to
// their clients after the GOAWAY: no request may fail.
func TestUpgradeHTTP3(t *testing.T) {
	h := startH3Load(t, 1000)
	h.p.Signal(t, syscall.SIGUSR2)
	h.p.WaitLine(t, "upgrade: the new process is ready")
	oldExit := time.Now()
	if err := h.p.WaitExit(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	exited := time.Since(oldExit)
	// A request whose packets no longer reach the old process stalls
	// until its drain deadline cuts the connection.
	cut := strings.Contains(h.p.Output(), "stopped with connections cut at the deadline")
	if cut {
		t.Errorf("the old process cut connections at its drain deadline (10s): packets of its connections did not reach it")
	}
	h.underWay(t, "after the upgrade") // and on the successor alone
	parts, failed := h.stop()
	if failed {
		t.Errorf("HTTP/3 requests failed across the upgrade: %s", parts)
	}
	Record(t, "Upgrade with HTTP/3 in flight: clb (HTTPS listener with EnableHttp3, a Fleet stateless-reset key) upgraded with SIGUSR2 while 10 http3.Transport clients, each on a keep-alive QUIC connection of its own, request in a loop: 4 quick GETs, 4 GETs the backend answers after 200 ms, 2 downloads of 1 MiB; the successor forwards the old generation's packets to the old process, which reads only those once it retires and leaves its idle connections to their clients after the GOAWAY",
		"%s; old process exited %s after the successor was ready, connections cut at its drain deadline: %v", parts, exited.Round(time.Millisecond), cut)
}

// h3get gets url over HTTP/3 and checks the answer: "h" after size
// octets of the body.
func h3get(c *http.Client, url string, size int) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != http.StatusOK || len(b) != size+1 || resp.ProtoMajor != 3) {
		err = fmt.Errorf("%s %d, %d octets", resp.Proto, resp.StatusCode, len(b))
	}
	return err
}
