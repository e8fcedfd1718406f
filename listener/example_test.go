package listener_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
)

// backend starts a TCP server on loopback that greets with its name.
func backend(name string) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, name+"\n")
			c.Close()
		}
	}()
	return ln
}

// A TCP listener balancing two backends 3:1 with smooth weighted round
// robin.
func Example() {
	a, b := backend("a"), backend("b")
	defer a.Close()
	defer b.Close()

	group, err := balancer.New(balancer.Config{Scheduler: balancer.WeightedRoundRobin()},
		balancer.Backend{ID: "a", Addr: a.Addr().String(), Weight: 75},
		balancer.Backend{ID: "b", Addr: b.Addr().String(), Weight: 25},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Port 0: the system picks a free port; Addrs reports it.
	l, err := inst.Add(listener.Config{Name: "web", Protocol: listener.TCP, Host: "127.0.0.1", Group: group})
	if err != nil {
		fmt.Println(err)
		return
	}
	counts := map[string]int{}
	for range 8 {
		c, err := net.DialTimeout("tcp", l.Addrs()[0].String(), 5*time.Second)
		if err != nil {
			fmt.Println(err)
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second)) // a lost greeting fails, not hangs
		name, _ := bufio.NewReader(c).ReadString('\n')
		counts[name[:len(name)-1]]++
		c.Close()
	}
	fmt.Println(l.Name(), l.State(), counts)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(inst.Stop(ctx), l.State())
	// Output:
	// web running map[a:6 b:2]
	// <nil> stopped
}

// Every refused field is named, with its value and the rule it breaks.
// The library refuses only what cannot work; the CLB's narrower ranges
// are the clb example's.
func ExampleInstance_Add() {
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo"})
	group, _ := balancer.New(balancer.Config{}, balancer.Backend{Addr: "127.0.0.1:8080", Weight: 100})
	for _, cfg := range []listener.Config{
		{Protocol: listener.UDP, Port: 70000, Group: group},
		{Protocol: listener.TCP, Port: 80, Group: group, EstablishedTimeout: -5 * time.Second},
		{Protocol: listener.TCP, EndPort: 90, Group: group},
	} {
		_, err := inst.Add(cfg)
		fmt.Println(err)
	}
	// Output:
	// listener: Port 70000: out of range 0–65535
	// listener: EstablishedTimeout -5s: negative
	// listener: EndPort 90: needs a Port other than 0
}
