package listener_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
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

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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
	port := freePort()
	l, err := inst.Add(listener.Config{Name: "web", Protocol: listener.TCP, Host: "127.0.0.1", Port: port, Group: group})
	if err != nil {
		fmt.Println(err)
		return
	}
	counts := map[string]int{}
	for range 8 {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			fmt.Println(err)
			return
		}
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

// Every refused field is named, with its value and bound.
func ExampleInstance_Add() {
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo"})
	group, _ := balancer.New(balancer.Config{}, balancer.Backend{Addr: "127.0.0.1:8080", Weight: 100})
	for _, cfg := range []listener.Config{
		{Protocol: listener.UDP, Port: 4789, Group: group},
		{Protocol: listener.TCP, Port: 80, Group: group, EstablishedTimeout: 5 * time.Second},
	} {
		_, err := inst.Add(cfg)
		fmt.Println(err)
	}
	// Output:
	// listener: Port 4789: reserved for UDP (250, 4789, 4790)
	// listener: EstablishedTimeout 5s: out of range 10s–900s
}
