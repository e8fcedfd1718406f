package reliability_test

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/examples/reliability"
	"github.com/lbkit/lbkit/listener"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Hostile datagrams from many sockets: random sizes and bytes,
// truncated QUIC headers on a qch listener, and a flood of new flows
// beyond MaxFlows. The flow table stays within MaxFlows, an established
// flow keeps working throughout, a new flow works once the hostile ones
// expired, and their goroutines are gone.
func TestUDPHostile(t *testing.T) {
	const maxFlows, idle = 64, 2 * time.Second
	qch, err := balancer.ParseScheduler(balancer.NameQCH)
	require.NoError(t, err)
	dcid := string(make([]byte, 8))
	quic := []string{"\xc0", "\xc0\x00\x00\x00\x01", "\xc0\x00\x00\x00\x01\x14", "\xc0\x00\x00\x00\x01\x14abc",
		"\xc0\x00\x00\x00\x01\xff" + dcid, "\xc3\x00\x00\x00\x01\x08" + dcid + "\x08", "\x40", "\x40abc", "\x40" + dcid,
		"\xff\xff\xff\xff\xff\xff\xff"}
	tests := []struct {
		name      string
		sched     balancer.Scheduler
		senders   int
		datagrams func() [][]byte // what each sender sends
	}{
		{"random datagrams of 0–1500 bytes", nil, 50, func() [][]byte {
			ds := make([][]byte, 40)
			for i := range ds {
				n, _ := rand.Int(rand.Reader, big.NewInt(1501))
				ds[i] = make([]byte, n.Int64())
				rand.Read(ds[i])
			}
			return ds
		}},
		{"truncated QUIC headers under qch", qch, 20, func() [][]byte {
			ds := make([][]byte, len(quic))
			for i, q := range quic {
				ds[i] = []byte(q)
			}
			return ds
		}},
		{"new flows beyond MaxFlows", nil, 500, func() [][]byte { return [][]byte{[]byte("flood")} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := balancer.New(balancer.Config{Scheduler: tt.sched}, udpEcho(t, "u1"), udpEcho(t, "u2"))
			require.NoError(t, err)
			l := addListener(t, listener.Config{Protocol: listener.UDP, Group: g, MaxFlows: maxFlows, IdleTimeout: idle})
			est := udpDial(t, addr(l))
			require.NoError(t, udpAsk(est, "established"))
			before := measure()

			sent, peak := 0, int64(0)
			for range tt.senders {
				c := udpDial(t, addr(l))
				for _, d := range tt.datagrams() {
					c.Write(d)
					sent++
				}
				peak = max(peak, l.Stats().Active)
			}
			waitFor(t, "the hostile flows to start", func() bool { return l.Stats().New >= uint64(min(tt.senders+1, maxFlows)) })
			peak = max(peak, l.Stats().Active)
			during := measure()
			assert.NoError(t, udpAsk(est, "established during"), "the established flow")
			start := time.Now()
			waitFor(t, "the hostile flows to expire", func() bool {
				return udpAsk(est, "established") == nil && l.Stats().Active == 1
			})
			expired := time.Since(start)
			after := settle(before.goroutines)
			assert.NoError(t, udpAsk(udpDial(t, addr(l)), "new"), "a new flow")
			st := l.Stats()
			assert.Equal(t, int64(min(tt.senders+1, maxFlows)), peak, "flows open at once")
			if tt.senders >= maxFlows {
				assert.GreaterOrEqual(t, st.Dropped, uint64(tt.senders+1-maxFlows), "datagrams dropped for a full flow table")
			}
			assert.LessOrEqual(t, after.goroutines, before.goroutines, "goroutines after the hostile flows expired")
			reliability.Record(t, fmt.Sprintf("%d datagrams from %d sockets: %s (MaxFlows %d, IdleTimeout %v)", sent, tt.senders, tt.name, maxFlows, idle),
				"flows: %d at most at once, %d started; %d datagrams dropped (empty, past a dialing flow's queue or beyond MaxFlows); established flow answered throughout; hostile flows gone %v after; goroutines %d → %d → %d",
				peak, st.New, st.Dropped, expired.Round(100*time.Millisecond), before.goroutines, during.goroutines, after.goroutines)
		})
	}
}

// udpEcho starts a UDP backend on loopback that echoes every datagram.
func udpEcho(t *testing.T, id string) balancer.Backend {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return balancer.Backend{ID: id, Addr: pc.LocalAddr().String(), Weight: 100}
}

func udpDial(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// udpAsk sends msg on c and wants it echoed, trying three times.
func udpAsk(c *net.UDPConn, msg string) error {
	buf := make([]byte, 2048)
	for range 3 {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == msg {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo of %q", msg)
}
