package quiclb

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testpki"

	"github.com/lbkit/lbkit/internal/leakcheck"
	"github.com/quic-go/quic-go"
)

const testALPN = "lbkit-quiclb-test"

// testTLS returns a server config with a fresh self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	return testpki.LoopbackTLS(t, testALPN)
}

// relay forwards datagrams between one client and a server, recording
// the connection IDs the server chose: the DCIDs of the client's
// short-header and Handshake packets, and the SCIDs of the server's long
// headers.
type relay struct {
	pc      *net.UDPConn
	server  *net.UDPAddr
	cidLen  int
	mu      sync.Mutex
	client  *net.UDPAddr
	chosen  [][]byte
	packets int
	short   int // short-header packets from the client
}

func (r *relay) run() {
	buf := make([]byte, 2048)
	for {
		n, from, err := r.pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		r.mu.Lock()
		if from.String() == r.server.String() {
			if r.client != nil {
				r.record(longSCID(p))
				r.pc.WriteToUDP(p, r.client)
			}
		} else {
			r.client = from
			r.packets++
			switch {
			case p[0]&0x80 == 0 && len(p) > r.cidLen: // short header
				r.record(p[1 : 1+r.cidLen])
				r.short++
			case p[0]&0xb0 == 0xa0: // long header, v1 Handshake
				r.record(longDCID(p))
			}
			r.pc.WriteToUDP(p, r.server)
		}
		r.mu.Unlock()
	}
}

func (r *relay) record(cid []byte) {
	if cid != nil {
		r.chosen = append(r.chosen, append([]byte(nil), cid...))
	}
}

// longDCID and longSCID read a long header's connection IDs (RFC 8999).
func longDCID(p []byte) []byte {
	if len(p) < 6 || p[0]&0x80 == 0 || len(p) < 6+int(p[5]) {
		return nil
	}
	return p[6 : 6+int(p[5])]
}

func longSCID(p []byte) []byte {
	d := longDCID(p)
	at := 6 + len(d)
	if d == nil || len(p) < at+1 || len(p) < at+1+int(p[at]) {
		return nil
	}
	return p[at+1 : at+1+int(p[at])]
}

// A real quic-go server whose Transport uses the Generator: every
// connection ID it chooses, as seen on the wire between it and a real
// client, decodes to its server ID.
func TestQUICGoServer(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			serverTLS, clientTLS := testTLS(t)
			id := mustID(t, strings.Repeat("5a", m.cfg.ServerIDLen))
			gen, err := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: id})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := NewDecoder(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			spc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			str := &quic.Transport{Conn: spc, ConnectionIDGenerator: gen}
			ln, err := str.Listen(serverTLS, nil)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			defer spc.Close()
			defer str.Close()
			wg.Go(func() { // echo server
				conn, err := ln.Accept(ctx)
				if err != nil {
					return
				}
				s, err := conn.AcceptStream(ctx)
				if err != nil {
					return
				}
				io.Copy(s, s)
				s.Close()
				<-conn.Context().Done()
			})

			rpc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer rpc.Close()
			r := &relay{pc: rpc, server: spc.LocalAddr().(*net.UDPAddr), cidLen: gen.ConnectionIDLen()}
			wg.Go(r.run)

			cpc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer cpc.Close()
			ctr := &quic.Transport{Conn: cpc}
			defer ctr.Close()
			conn, err := ctr.Dial(ctx, rpc.LocalAddr(), clientTLS, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("hello through QUIC-LB")
			if _, err := s.Write(msg); err != nil {
				t.Fatal(err)
			}
			s.Close()
			got, err := io.ReadAll(s)
			if err != nil || string(got) != string(msg) {
				t.Fatalf("echo = %q, %v, want %q", got, err, msg)
			}
			// The client's first 1-RTT packets may ride behind a Handshake
			// packet in one datagram; its ACK of the echo (within
			// max_ack_delay) leads a datagram of its own.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				r.mu.Lock()
				short := r.short
				r.mu.Unlock()
				if short > 0 {
					break
				}
			}
			conn.CloseWithError(0, "")

			r.mu.Lock()
			defer r.mu.Unlock()
			if r.short == 0 {
				t.Fatalf("relay saw no short-header packet in %d client packets", r.packets)
			}
			if len(r.chosen) < 3 {
				t.Fatalf("relay saw %d server-chosen connection IDs in %d client packets, want several", len(r.chosen), r.packets)
			}
			distinct := map[string]bool{}
			for _, cid := range r.chosen {
				distinct[string(cid)] = true
				if got, ok := dec.ServerID(cid); !ok || got != id {
					t.Errorf("server-chosen connection ID %x decodes to %v, %v, want %v", cid, got, ok, id)
				}
			}
			t.Logf("%s: %d server-chosen connection IDs on the wire (%d distinct), all decode to %v", m.name, len(r.chosen), len(distinct), id)
		})
	}
}
