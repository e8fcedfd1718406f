package listener

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/netx"
)

// BenchmarkUDPForward measures datagram round trips per second between a
// client and an echo backend, through a UDP listener and directly, with
// a window of datagrams in flight. A datagram lost on the way (a full
// socket buffer) is counted, not retransmitted.
func BenchmarkUDPForward(b *testing.B) {
	back := startUDPEcho(b, "b")
	in, err := NewInstance(InstanceConfig{ID: "bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	g, err := balancer.New(balancer.Config{}, back.backend(100))
	if err != nil {
		b.Fatal(err)
	}
	l, err := in.Add(Config{Protocol: UDP, Host: "127.0.0.1", Group: g})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		in.Stop(ctx)
	}()
	for _, bc := range []struct{ name, addr string }{
		{"lbkit", listenerAddr(l)},
		{"direct", back.addr()},
	} {
		b.Run(bc.name, func(b *testing.B) { benchUDPRoundTrips(b, bc.addr) })
	}
}

func benchUDPRoundTrips(b *testing.B, addr string) {
	const window, size = 32, 256
	c := udpDial(b, "", addr)
	payload := make([]byte, size)
	buf := make([]byte, 2048)
	send := func() {
		if _, err := c.Write(payload); err != nil {
			b.Fatal(err)
		}
	}
	// One round trip first, so the flow exists before the clock starts.
	send()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	sent, recv, lost := 0, 0, 0
	for ; sent < min(window, b.N); sent++ {
		send()
	}
	for recv+lost < b.N {
		if recv%256 == 0 {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		if _, err := c.Read(buf); err != nil {
			if !netx.IsTimeout(err) {
				b.Fatal(err)
			}
			// Whatever is in flight is lost: refill the window.
			lost += sent - recv - lost
			for n := 0; n < window && sent < b.N; n++ {
				send()
				sent++
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			continue
		}
		recv++
		if sent < b.N {
			send()
			sent++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(recv)/b.Elapsed().Seconds(), "datagrams/s")
	b.ReportMetric(float64(lost), "lost")
}
