package discovery_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/miekg/dns"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/discovery"
)

// serveZone answers SRV and A queries for a small zone on a loopback UDP
// port, standing in for the resolver a real deployment has.
func serveZone() (addr string, stop func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	zone := map[uint16][]string{
		dns.TypeSRV: {
			"_http._tcp.api.example. 30 IN SRV 10 70 8080 a.api.example.",
			"_http._tcp.api.example. 30 IN SRV 10 30 8080 b.api.example.",
			"_http._tcp.api.example. 30 IN SRV 20 10 8080 c.api.example.",
		},
	}
	hosts := map[string]string{"a.api.example.": "127.0.0.1", "b.api.example.": "127.0.0.2", "c.api.example.": "127.0.0.3"}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		qq := q.Question[0]
		for _, s := range zone[qq.Qtype] {
			rr, _ := dns.NewRR(s)
			m.Answer = append(m.Answer, rr)
		}
		if ip, ok := hosts[qq.Name]; ok && qq.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(qq.Name + " 30 IN A " + ip)
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	return pc.LocalAddr().String(), func() { srv.Shutdown() }
}

// A group fed by SRV records: weights from the records, the lowest
// priority as the primary tier.
func Example() {
	resolver, stop := serveZone()
	defer stop()

	g, err := balancer.New(balancer.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	src, err := discovery.NewDNS(discovery.DNSConfig{
		Name:     "_http._tcp.api.example",
		Type:     discovery.SRV,
		Resolver: resolver, // by default, /etc/resolv.conf's first nameserver
		Logger:   slog.New(slog.DiscardHandler),
	}, g)
	if err != nil {
		fmt.Println(err)
		return
	}
	// One lookup now; Start would run them on every TTL until Stop.
	next, err := src.Resolve(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range g.Members() {
		fmt.Println(m.ID(), m.Weight(), map[bool]string{true: "standby", false: "primary"}[m.Standby()])
	}
	fmt.Println("next lookup in", next)
	// Output:
	// 127.0.0.1:8080 70 primary
	// 127.0.0.2:8080 30 primary
	// 127.0.0.3:8080 10 standby
	// next lookup in 30s
}

// The common case: the addresses of a name, each a member on one port,
// kept in step until Stop.
func ExampleDNS_Start() {
	resolver, stop := serveZone()
	defer stop()

	g, _ := balancer.New(balancer.Config{})
	src, err := discovery.NewDNS(discovery.DNSConfig{
		Name:     "a.api.example",
		Port:     80,
		Family:   "ipv4",
		Resolver: resolver,
		Logger:   slog.New(slog.DiscardHandler),
	}, g)
	if err != nil {
		fmt.Println(err)
		return
	}
	changed := g.Changed()
	if err := src.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer src.Stop()
	<-changed // the first answer applied
	fmt.Println(g.IDs(), src.Stats().Members)
	// Output:
	// [127.0.0.1:80] 1
}
