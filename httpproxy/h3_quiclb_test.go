package httpproxy_test

import (
	"net"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/httpproxy"
)

// ServerConfig.QUICConnIDs issues the IDs of QUIC's connections: without
// QUIC it has nothing to do, and NewServer says so.
func TestServerQUICConnIDsNeedsQUIC(t *testing.T) {
	g, _ := balancer.New(balancer.Config{})
	p, _ := httpproxy.New(g, httpproxy.Options{})
	id, err := quiclb.MakeServerID([]byte{0x20, 1})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{ServerID: id})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = p.NewServer(ln, httpproxy.ServerConfig{QUICConnIDs: gen}, nil)
	if want := `httpproxy: QUICConnIDs "*quiclb.Generator": needs QUIC (HTTP/3)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("NewServer(QUICConnIDs without QUIC) = %v, want %s", err, want)
	}
}
