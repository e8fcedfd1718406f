package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestHTTP3HandshakeLimit: with MaxQUICHandshakes 2, the first
// handshake goes straight in; the second, at half the limit, must answer
// a Retry first; the third answers it too and is then refused with
// CONNECTION_REFUSED. Once the held handshakes complete, their slots
// come back: a new client is served without a Retry.
func TestHTTP3HandshakeLimit(t *testing.T) {
	leaks(t)
	p := retireProxy(t, nil)
	// The TLS handshake of a held client waits here, holding its slot.
	entered, release := make(chan struct{}, 8), make(chan struct{})
	s, h, addr, ctls := startH3Host(t, p, ServerConfig{MaxQUICHandshakes: 2}, func(c *tls.Config) {
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			entered <- struct{}{}
			<-release
			return nil, nil
		}
	})
	qtls := ctls.Clone()
	qtls.NextProtos = []string{http3.NextProtoH3}
	dial := func() (*quic.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return quic.DialAddr(ctx, addr, qtls, &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
	}
	held := make(chan error, 2)
	for range 2 {
		go func() {
			c, err := dial()
			if err == nil {
				c.CloseWithError(0, "")
			}
			held <- err
		}()
		<-entered
	}
	// Counted per Initial packet: a ClientHello with a post-quantum key
	// share spans two.
	if got := h.m.QUICRetries.Load(); got == 0 {
		t.Error("QUICRetries after 2 held handshakes = 0, want the second's (at half the limit)")
	}
	_, err := dial()
	if te, ok := errors.AsType[*quic.TransportError](err); !ok || te.ErrorCode != quic.ConnectionRefused {
		t.Errorf("third handshake: %v, want CONNECTION_REFUSED", err)
	}
	if got := h.m.QUICHandshakesRefused.Load(); got == 0 {
		t.Error("QUICHandshakesRefused = 0, want the third's")
	}
	retries := h.m.QUICRetries.Load()
	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Errorf("held handshake: %v", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.s.h3.limit.n.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.s.h3.limit.n.Load(); n != 0 {
		t.Fatalf("handshakes in progress after both completed = %d, want 0", n)
	}
	resp, err := h3Client(t, ctls).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status after the flood = %d", resp.StatusCode)
	}
	if got := h.m.QUICRetries.Load(); got != retries {
		t.Errorf("QUICRetries after a lone client = %d, want %d: no Retry below half the limit", got, retries)
	}
}
