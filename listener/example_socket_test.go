package listener_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
)

// activated returns the socket systemd passed as descriptor 3 (socket
// activation: LISTEN_PID is this process and LISTEN_FDS is 1), or, run
// by hand, a socket it binds itself.
func activated() (net.Listener, error) {
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && os.Getenv("LISTEN_FDS") == "1" {
		f := os.NewFile(3, "systemd")
		defer f.Close() // FileListener made its own descriptor
		return net.FileListener(f)
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// A listener serving on a socket handed to it, as under systemd socket
// activation: it takes its port from the socket and owns it from Add on.
func ExampleConfig_listener() {
	a := backend("a")
	defer a.Close()
	group, err := balancer.New(balancer.Config{}, balancer.Backend{ID: "a", Addr: a.Addr().String()})
	if err != nil {
		fmt.Println(err)
		return
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Bounded so that a stuck stop fails the example instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer inst.Stop(ctx)
	ln, err := activated()
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := inst.Add(listener.Config{Protocol: listener.TCP, Listener: ln, Group: group})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("port from the socket:", l.Port() == ln.Addr().(*net.TCPAddr).Port)
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	greeting, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print("backend: ", greeting)
	// Output:
	// port from the socket: true
	// backend: a
}

// Replacing a listener by one on the same port in one Change: the new
// listener takes over the old one's socket, so the port never refuses a
// connection, and a change that cannot be made in full is not made at
// all.
func ExampleInstance_Apply() {
	a, b := backend("a"), backend("b")
	defer a.Close()
	defer b.Close()
	group := func(ln net.Listener) *balancer.Group {
		g, _ := balancer.New(balancer.Config{}, balancer.Backend{ID: "x", Addr: ln.Addr().String()})
		return g
	}
	inst, _ := listener.NewInstance(listener.InstanceConfig{ID: "lb-demo", Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer inst.Stop(ctx)
	old, err := inst.Add(listener.Config{Name: "web", Protocol: listener.TCP, Host: "127.0.0.1", Group: group(a)})
	if err != nil {
		fmt.Println(err)
		return
	}
	greet := func() string {
		c, err := net.DialTimeout("tcp", old.Addrs()[0].String(), 5*time.Second)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s, _ := bufio.NewReader(c).ReadString('\n')
		return s
	}
	fmt.Print("before: ", greet())
	ls, err := inst.Apply(ctx, listener.Change{
		Remove: []string{"web"},
		Add:    []listener.Config{{Name: "web", Protocol: listener.TCP, Host: "127.0.0.1", Port: old.Port(), Group: group(b)}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	old = ls[0]
	fmt.Print("after: ", greet())
	// Output:
	// before: a
	// after: b
}
