package listener_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/listener"
)

// QUIC-LB with your own quic-go server: the server's Transport issues
// connection IDs from a quiclb.Generator, and a UDP listener with the qch
// scheduler routes by them through a quiclb.Router, so a client keeps its
// backend when its address changes.
func ExampleConfig_quicRouter() {
	cfg := quiclb.Config{Key: []byte("sixteen byte key")} // shared by servers and load balancer
	id, _ := quiclb.ParseServerID("0001")
	gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: cfg, ServerID: id})
	if err != nil {
		fmt.Println(err)
		return
	}
	cert, roots := selfSigned("backend.test")
	pc, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	tr := &quic.Transport{Conn: pc, ConnectionIDGenerator: gen}
	defer pc.Close()
	defer tr.Close()
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"echo"}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { // an echo server on quic-go
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					s, err := conn.AcceptStream(context.Background())
					if err != nil {
						return
					}
					msg, _ := io.ReadAll(s)
					fmt.Fprintf(s, "%s from backend-a", msg)
					s.Close()
				}
			}()
		}
	}()

	dec, _ := quiclb.NewDecoder(cfg)
	router, _ := quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: quiclb.ServerIDs{id: "backend-a"}})
	qch, _ := balancer.ParseScheduler(balancer.NameQCH)
	group, _ := balancer.New(balancer.Config{Scheduler: qch}, balancer.Backend{ID: "backend-a", Addr: pc.LocalAddr().String()})
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	l, err := inst.Add(listener.Config{Protocol: listener.UDP, Host: "127.0.0.1", Group: group,
		QUICRouter: router, QUICConnIDLength: cfg.ConnIDLen()})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "backend.test", NextProtos: []string{"echo"}}
	newClient := func() *quic.Transport { // a client socket of its own, so it can move
		pc, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return &quic.Transport{Conn: pc}
	}
	tr1, tr2 := newClient(), newClient()
	defer tr1.Conn.Close()
	defer tr2.Conn.Close()
	defer tr1.Close()
	defer tr2.Close()
	conn, err := tr1.Dial(ctx, l.Addrs()[0], clientTLS, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	echo := func(msg string) {
		s, _ := conn.OpenStreamSync(ctx)
		s.SetDeadline(time.Now().Add(5 * time.Second))
		s.Write([]byte(msg))
		s.Close() // done sending
		answer, _ := io.ReadAll(s)
		fmt.Println(string(answer))
	}
	echo("hello")

	// The client moves to a new address: a new flow for the listener,
	// whose packets carry a connection ID the backend chose.
	path, _ := conn.AddPath(tr2)
	if err := path.Probe(ctx); err != nil {
		fmt.Println(err)
		return
	}
	path.Switch()
	echo("hello again")
	conn.CloseWithError(0, "")
	// The first flow started with a DCID the client chose, so it went by
	// the four-tuple; the second was routed by the backend's server ID.
	st := l.Stats()
	fmt.Println("routed by server ID:", st.QUICRouted, "fallback:", st.QUICFallback)

	// UDP flows end only by idle timeout: cut them at once.
	stop, cutFlows := context.WithCancel(ctx)
	cutFlows()
	inst.Stop(stop)
	fmt.Println(l.State())
	// Output:
	// hello from backend-a
	// hello again from backend-a
	// routed by server ID: 1 fallback: 1
	// stopped
}
