package listener

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// localListener returns a TCP socket on a free loopback port, closed at
// cleanup if nothing took it.
func localListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// closed reports whether ln was closed: Accept on a closed socket fails
// at once with net.ErrClosed.
func closed(ln net.Listener) bool {
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Millisecond))
	_, err := ln.Accept()
	return errors.Is(err, net.ErrClosed)
}

// A handed socket that does not fit the listener is refused, naming the
// field, and closed: Add took it.
func TestHandedSocketRefused(t *testing.T) {
	leaks(t)
	g := newGroup(t, nil)
	pc := func() net.PacketConn {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  func(ln net.Listener) Config
		want string
	}{
		{"listener on udp", func(ln net.Listener) Config { return Config{Protocol: UDP, Listener: ln} },
			`listener: Listener "*net.TCPListener": only for tcp, http and https listeners; udp takes a PacketConn`},
		{"packet conn on tcp", func(net.Listener) Config { return Config{Protocol: TCP, PacketConn: pc()} },
			`listener: PacketConn "*net.UDPConn": only for udp listeners; tcp, http and https take a Listener`},
		{"not a TCP socket", func(ln net.Listener) Config { return Config{Protocol: HTTP, Listener: wrapped{ln}} },
			`listener: Listener "listener.wrapped": want a *net.TCPListener`},
		{"port range", func(ln net.Listener) Config { return Config{Protocol: TCP, Port: 1000, EndPort: 1001, Listener: ln} },
			"listener: EndPort 1001: not with a handed Listener: it is one port"},
		{"other port", func(ln net.Listener) Config { return Config{Protocol: TCP, Port: 1, Listener: ln} },
			"listener: Port 1: the handed Listener is bound to port "},
		{"other host", func(ln net.Listener) Config { return Config{Protocol: TCP, Host: "127.0.0.2", Listener: ln} },
			`listener: Host "127.0.0.2": the handed Listener is bound to 127.0.0.1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstance(t)
			ln := localListener(t)
			cfg := tc.cfg(ln)
			cfg.Group = g
			_, err := in.Add(cfg)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Add = %v, want %q", err, tc.want)
			}
			if cfg.Listener != nil && !closed(ln) {
				t.Error("the refused socket is still open")
			}
		})
	}
}

// wrapped is a net.Listener that is not a *net.TCPListener.
type wrapped struct{ net.Listener }

// A listener serves on its handed socket from its first Start, closes it
// when it stops, binds the same address on the next Start, and closes a
// socket it never served on when it is removed.
func TestHandedSocketLifecycle(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	ln := localListener(t)
	l := addListener(t, in, Config{Protocol: TCP, Listener: ln, Stopped: true, Group: newGroup(t, nil, b.backend(100))})
	if got, want := l.Port(), addrPort(ln.Addr()); got != want {
		t.Fatalf("Port() = %d, want the socket's %d", got, want)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if got := l.Addrs()[0].String(); got != ln.Addr().String() {
		t.Fatalf("Addrs() = %s, want %s", got, ln.Addr())
	}
	c, r, name := dialName(t, ln.Addr().String())
	if err := echoOnce(c, r, "hello"); err != nil || name != "b" {
		t.Fatalf("through the handed socket: backend %q, %v", name, err)
	}
	c.Close()
	if err := l.Stop(within(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !closed(ln) {
		t.Fatal("Stop left the handed socket open")
	}
	if err := l.Start(); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	c, _, name = dialName(t, ln.Addr().String())
	c.Close()
	if name != "b" {
		t.Fatalf("after a restart: backend %q", name)
	}

	// Removed before it ever started, a listener closes its socket.
	unused := localListener(t)
	addListener(t, in, Config{Protocol: TCP, Listener: unused, Stopped: true, Group: newGroup(t, nil, b.backend(100))})
	if err := in.Remove(within(t, 10*time.Second), "tcp_"+strings.TrimPrefix(unused.Addr().String(), "127.0.0.1:")); err != nil {
		t.Fatal(err)
	}
	if !closed(unused) {
		t.Error("Remove left an unused handed socket open")
	}
}

// A UDP listener serves on a handed *net.UDPConn.
func TestHandedPacketConn(t *testing.T) {
	leaks(t)
	b := startUDPEcho(t, "b")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := newUDPInstance(t)
	l := addUDPListener(t, in, Config{PacketConn: pc, Group: newGroup(t, nil, b.backend(100))})
	if got, want := l.Port(), addrPort(pc.LocalAddr()); got != want {
		t.Fatalf("Port() = %d, want the socket's %d", got, want)
	}
	c := udpDial(t, "", pc.LocalAddr().String())
	if got := udpAsk(t, c, "ping"); got != "b" {
		t.Fatalf("reply %q", got)
	}
}

// Files hands the running listener's socket on: a connection dialed
// after the listener stopped is accepted through the descriptor, as by
// a successor process, and a stopped listener has none.
func TestFilesHandOn(t *testing.T) {
	leaks(t)
	b := startEcho(t, "b")
	in := newInstance(t)
	l := addListener(t, in, Config{Protocol: TCP, Group: newGroup(t, nil, b.backend(100))})
	fs, err := l.Files()
	if err != nil || len(fs) != 1 {
		t.Fatalf("Files() = %d files, %v; want 1", len(fs), err)
	}
	ln, err := net.FileListener(fs[0])
	fs[0].Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := l.Stop(within(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if fs, err := l.Files(); len(fs) != 0 || err != nil {
		t.Fatalf("a stopped listener's Files() = %d files, %v; want none", len(fs), err)
	}
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port())))
	if err != nil {
		t.Fatalf("dial after Stop, with the socket handed on: %v", err)
	}
	defer c.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	got, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	got.Close()
}

// The descriptors Files returns, and those Apply takes over a socket
// with, leave the socket non-blocking when their Fd is taken, as
// os.StartProcess, exec.Cmd.ExtraFiles and net.FileListener do: the
// mode belongs to the socket, and a blocking one would hold the running
// listener's accept — and its Close — in the kernel until a connection
// came (TestFilesHandOn hung so once in about 70 runs).
func TestFilesLeaveSocketsNonBlocking(t *testing.T) {
	leaks(t)
	ca := newCA(t, "ca")
	l := addHTTPS(t, ca, HTTPOptions{HTTP3: true, TLSPolicy: tls13(t)}, startHTTPBackend(t, "b", nil))
	fs, err := l.Files()
	if err != nil || len(fs) != 2 {
		t.Fatalf("Files() = %d files, %v; want a TCP and a UDP one", len(fs), err)
	}
	for _, f := range fs {
		f.Fd()
		f.Close()
	}
	wantNonBlocking(t, "after Files and Fd", l.srv.socks())

	in := l.inst
	added, err := in.Apply(within(t, 30*time.Second), Change{
		Remove: []string{l.Name()},
		Add:    []Config{{Protocol: HTTPS, Host: l.cfg.Host, Port: l.Port(), Group: l.cfg.Group, HTTP: l.cfg.HTTP}},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantNonBlocking(t, "after Apply took the sockets over", added[0].srv.socks())
}

// wantNonBlocking checks that every socket of socks is non-blocking. It
// makes a blocking one non-blocking again, and wakes a read or accept
// that may wait in the kernel, so that the test fails rather than hangs.
func wantNonBlocking(t *testing.T, when string, socks sockets) {
	t.Helper()
	type socket struct {
		syscall.Conn
		addr net.Addr
	}
	var all []socket
	for _, ln := range socks.tcp {
		all = append(all, socket{ln, ln.Addr()})
	}
	for _, pc := range socks.udp {
		all = append(all, socket{pc, pc.LocalAddr()})
	}
	for _, sc := range all {
		rc, err := sc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		var ferr error
		if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
			t.Fatal(err, ferr)
		}
		if flags&unix.O_NONBLOCK != 0 {
			continue
		}
		t.Errorf("%s: the %s socket %s is blocking", when, sc.addr.Network(), sc.addr)
		rc.Control(func(fd uintptr) { syscall.SetNonblock(int(fd), true) })
		if c, err := net.Dial(sc.addr.Network(), sc.addr.String()); err == nil {
			c.Write([]byte("wake"))
			c.Close()
		}
	}
}

// An HTTPS listener with HTTP3 on Port 0 binds TCP and UDP on one
// ephemeral port: when the UDP port of the TCP port the system picked
// is another program's, bindTwins lets that TCP port go and takes
// another, and gives up with both errors' cause after twinTries.
func TestBindTwinsSkipsTakenUDPPort(t *testing.T) {
	taken := localListener(t)
	port := strconv.Itoa(addrPort(taken.Addr()))
	other, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		t.Skipf("the UDP twin of port %s is in use already: %v", port, err)
	}
	defer other.Close()
	calls := 0
	ln, pc, err := bindTwins("127.0.0.1", func() (net.Listener, error) {
		if calls++; calls == 1 {
			return taken, nil
		}
		return net.Listen("tcp", "127.0.0.1:0")
	})
	if err != nil {
		t.Fatalf("bindTwins = %v, want a second port", err)
	}
	defer ln.Close()
	defer pc.Close()
	if calls != 2 || !closed(taken) {
		t.Errorf("listen called %d times, first port closed: %v; want 2 calls, the taken port let go", calls, closed(taken))
	}
	if tp, up := addrPort(ln.Addr()), addrPort(pc.LocalAddr()); tp != up || strconv.Itoa(tp) == port {
		t.Errorf("bound TCP %d and UDP %d, want one port other than %s", tp, up, port)
	}

	calls = 0
	_, _, err = bindTwins("127.0.0.1", func() (net.Listener, error) {
		calls++
		return net.Listen("tcp", "127.0.0.1:"+port) // the port whose UDP twin is taken
	})
	if !errors.Is(err, syscall.EADDRINUSE) || calls != twinTries {
		t.Errorf("always the taken port: %v after %d tries, want EADDRINUSE after %d", err, calls, twinTries)
	}
}
