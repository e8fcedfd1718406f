package httpproxy

import (
	"net"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/quic-go/quic-go"
)

// ServerConfig.QUICConnIDs and QUICKeys are QUIC's: without QUIC they
// have nothing to do, and NewServer says so.
func TestServerQUICFieldsNeedQUIC(t *testing.T) {
	g, _ := balancer.New(balancer.Config{})
	p, _ := New(g, Options{})
	gen := testGenerator(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name string
		sc   ServerConfig
		want string
	}{
		{"conn IDs", ServerConfig{QUICConnIDs: gen}, `httpproxy: QUICConnIDs "*quiclb.Generator": needs QUIC (HTTP/3)`},
		{"keys", ServerConfig{QUICKeys: QUICKeys{Token: &quic.TokenGeneratorKey{}}}, `httpproxy: QUICKeys "set": needs QUIC (HTTP/3)`},
	} {
		if _, err := p.NewServer(ln, tc.sc, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewServer(%s without QUIC) = %v, want %s", tc.name, err, tc.want)
		}
	}
}

// The front end's QUIC transport is made with the configured generator
// and keys; their effect on routing and resets is tested in package
// listener, behind a UDP listener.
func TestQUICTransportTakesIDsAndKeys(t *testing.T) {
	gen := testGenerator(t)
	sc := ServerConfig{QUICConnIDs: gen, QUICKeys: QUICKeys{StatelessReset: &quic.StatelessResetKey{1}, Token: &quic.TokenGeneratorKey{2}}}
	tr := quicTransport(nil, &sc)
	if tr.ConnectionIDGenerator != gen || tr.StatelessResetKey != sc.QUICKeys.StatelessReset || tr.TokenGeneratorKey != sc.QUICKeys.Token {
		t.Errorf("quicTransport: generator %v, reset key %p, token key %p; want %v, %p, %p",
			tr.ConnectionIDGenerator, tr.StatelessResetKey, tr.TokenGeneratorKey, gen, sc.QUICKeys.StatelessReset, sc.QUICKeys.Token)
	}
}

// testGenerator is a QUIC-LB generator of the zero configuration.
func testGenerator(t *testing.T) *quiclb.Generator {
	t.Helper()
	id, err := quiclb.MakeServerID([]byte{0x20, 1})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{ServerID: id})
	if err != nil {
		t.Fatal(err)
	}
	return gen
}
