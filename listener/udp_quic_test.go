package listener

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testpki"

	"github.com/lbkit/lbkit/balancer"
	"github.com/quic-go/quic-go"
)

const quicALPN = "lbkit-test"

// testTLS returns a server config with a fresh self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	return testpki.LoopbackTLS(t, quicALPN)
}

// startQUICEcho starts a quic-go server that writes its name on each
// stream, then echoes it.
func startQUICEcho(t *testing.T, name string, tlsConf *tls.Config) balancer.Backend {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc, ConnectionIDLength: DefaultQUICConnIDLength}
	ln, err := tr.Listen(tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					str, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					wg.Go(func() {
						defer str.Close()
						if _, err := io.WriteString(str, name+"\n"); err != nil {
							return
						}
						io.Copy(str, str)
					})
				}
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		tr.Close() // closes every connection, so the streams end
		pc.Close()
		wg.Wait()
	})
	return balancer.Backend{ID: name, Addr: pc.LocalAddr().String(), Weight: 100}
}

// A real QUIC client and server talk through a qch listener, and the
// listener finds the connection ID of real quic-go packets.
func TestUDPQUICThroughQCH(t *testing.T) {
	leaks(t)
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	serverTLS, clientTLS := testTLS(t)
	qch, _ := balancer.ParseScheduler(balancer.NameQCH)
	g := newGroup(t, qch, startQUICEcho(t, "q1", serverTLS), startQUICEcho(t, "q2", serverTLS))
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{Stopped: true, Group: g})
	var (
		mu    sync.Mutex
		dcids [][]byte
	)
	startUDPServer(t, l, udpOptions{route: func(dcid []byte) (string, bool) {
		mu.Lock()
		dcids = append(dcids, append([]byte(nil), dcid...))
		mu.Unlock()
		return "", false // record only: an unrouted flow falls back to the four-tuple
	}})

	const conns = 3
	for i := range conns {
		func() {
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			tr := &quic.Transport{Conn: pc}
			defer tr.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ua, _ := net.ResolveUDPAddr("udp", listenerAddr(l))
			conn, err := tr.Dial(ctx, ua, clientTLS, &quic.Config{MaxIdleTimeout: 10 * time.Second})
			if err != nil {
				t.Fatalf("connection %d: dial through the listener: %v", i, err)
			}
			defer conn.CloseWithError(0, "done")
			str, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer str.Close()
			str.SetDeadline(time.Now().Add(10 * time.Second))
			// The server speaks only after the client's first bytes open
			// the stream on its side.
			msg := "hello 0\n"
			if _, err := io.WriteString(str, msg); err != nil {
				t.Fatal(err)
			}
			name := readLine(t, str)
			if name != "q1" && name != "q2" {
				t.Fatalf("greeting %q", name)
			}
			if got := readLine(t, str); got+"\n" != msg {
				t.Fatalf("echo %q, want %q", got, msg)
			}
			for j := 1; j < 5; j++ {
				msg := "hello " + strconv.Itoa(j) + "\n"
				if _, err := io.WriteString(str, msg); err != nil {
					t.Fatal(err)
				}
				if got := readLine(t, str); got+"\n" != msg {
					t.Fatalf("connection %d: echo %q, want %q", i, got, msg)
				}
			}
		}()
	}

	mu.Lock()
	defer mu.Unlock()
	if len(dcids) < conns {
		t.Fatalf("router saw %d flows' connection IDs, want at least %d", len(dcids), conns)
	}
	for _, d := range dcids {
		// A client's first Initial carries a DCID of 8–20 bytes (RFC 9000
		// §7.2).
		if len(d) < 8 || len(d) > 20 {
			t.Errorf("first pick's ConnID %x: length %d, want 8–20", d, len(d))
		}
	}
	if st := l.Stats(); st.New < conns || st.Dropped != 0 || st.BytesIn == 0 || st.BytesOut == 0 {
		t.Errorf("Stats: New=%d Dropped=%d BytesIn=%d BytesOut=%d", st.New, st.Dropped, st.BytesIn, st.BytesOut)
	}
}

// readLine reads up to a newline, byte by byte (a stream has no
// buffering reader here, and lines are short).
func readLine(t *testing.T, r io.Reader) string {
	t.Helper()
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("reading line after %q: %v", line, err)
		}
		if b[0] == '\n' {
			return string(line)
		}
		line = append(line, b[0])
	}
}
