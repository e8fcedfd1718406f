package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"github.com/lbkit/lbkit/internal/netx"
)

// sockets are a listener's listening sockets, one per port in port
// order: TCP sockets for tcp, http and https listeners, UDP sockets for
// udp and for https with HTTPOptions.HTTP3 (beside its TCP one). The
// zero value holds none.
type sockets struct {
	tcp []*net.TCPListener
	udp []*net.UDPConn
}

func (s sockets) empty() bool { return len(s.tcp) == 0 && len(s.udp) == 0 }

// close closes every socket.
func (s sockets) close() {
	for _, ln := range s.tcp {
		ln.Close()
	}
	for _, c := range s.udp {
		c.Close()
	}
}

// bind binds every port of cfg on cfg.Host, taking over, port by port,
// the socket a running listener of from serves that port on (see
// Listener.socketOn) instead of binding it anew. On failure it closes
// what it bound.
func bind(cfg Config, from []*Listener) (sockets, error) {
	var s sockets
	for _, port := range cfg.ports() {
		one, err := claim(cfg, port, from)
		if err != nil {
			s.close()
			return sockets{}, err
		}
		s.tcp = append(s.tcp, one.tcp...)
		s.udp = append(s.udp, one.udp...)
	}
	return s, nil
}

// claim returns the sockets for port (a TCP one, a UDP one, or both for
// HTTP/3): duplicates of those a listener of from serves it on, or new
// ones. On failure it closes what it got.
func claim(cfg Config, port int, from []*Listener) (got sockets, err error) {
	needTCP, needUDP := cfg.Protocol != UDP, cfg.servesUDP()
	for _, o := range from {
		held, _ := o.socketOn(cfg, port)
		if !needTCP {
			held.tcp = nil
		}
		if !needUDP {
			held.udp = nil
		}
		if held.empty() {
			continue
		}
		d, err := held.dup()
		if err != nil {
			got.close()
			return sockets{}, err
		}
		got.tcp, got.udp = append(got.tcp, d.tcp...), append(got.udp, d.udp...)
		needTCP, needUDP = needTCP && len(d.tcp) == 0, needUDP && len(d.udp) == 0
	}
	if needTCP && needUDP && port == 0 {
		ln, pc, err := bindTwins(cfg.Host, func() (net.Listener, error) {
			return net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
		})
		if err != nil {
			got.close()
			return sockets{}, err
		}
		got.tcp, got.udp = append(got.tcp, ln), append(got.udp, pc)
		return got, nil
	}
	if needTCP {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		if err != nil {
			got.close()
			return sockets{}, err
		}
		got.tcp = append(got.tcp, ln.(*net.TCPListener))
	}
	if needUDP {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		if err != nil {
			got.close()
			return sockets{}, err
		}
		got.udp = append(got.udp, pc.(*net.UDPConn))
	}
	return got, nil
}

// dup returns new descriptors of the same sockets: the kernel's socket
// stays open, and keeps its queue of pending connections, until both
// the original and the duplicate are closed. This is how a listener takes
// over the port of one it replaces without a moment of refusing
// connections.
func (s sockets) dup() (sockets, error) {
	var d sockets
	for _, ln := range s.tcp {
		c, err := dupOne(ln, ln.Addr(), func(f *os.File) (*net.TCPListener, error) {
			ln, err := net.FileListener(f)
			tl, _ := ln.(*net.TCPListener)
			return tl, err
		})
		if err != nil {
			d.close()
			return sockets{}, err
		}
		d.tcp = append(d.tcp, c)
	}
	for _, pc := range s.udp {
		c, err := dupOne(pc, pc.LocalAddr(), func(f *os.File) (*net.UDPConn, error) {
			pc, err := net.FilePacketConn(f)
			uc, _ := pc.(*net.UDPConn)
			return uc, err
		})
		if err != nil {
			d.close()
			return sockets{}, err
		}
		d.udp = append(d.udp, c)
	}
	return d, nil
}

// files returns a new descriptor of each socket, TCP ones first; on
// failure it closes those it made.
func (s sockets) files() ([]*os.File, error) {
	var fs []*os.File
	add := func(socket syscall.Conn, addr net.Addr) error {
		f, err := netx.File(socket, addr)
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			return err
		}
		fs = append(fs, f)
		return nil
	}
	for _, ln := range s.tcp {
		if err := add(ln, ln.Addr()); err != nil {
			return nil, err
		}
	}
	for _, pc := range s.udp {
		if err := add(pc, pc.LocalAddr()); err != nil {
			return nil, err
		}
	}
	return fs, nil
}

// dupOne opens a new descriptor of socket's through an os.File.
func dupOne[T any](socket syscall.Conn, addr net.Addr, open func(*os.File) (T, error)) (T, error) {
	f, err := netx.File(socket, addr)
	if err != nil {
		var none T
		return none, err
	}
	defer f.Close() // open made its own descriptor
	return open(f)
}

// handed returns the socket cfg hands the listener (Config.Listener or
// Config.PacketConn) and its bound address, or an error naming the field
// if its type does not suit the protocol. ok is false when none is
// handed.
func (c Config) handed() (s sockets, at netip.AddrPort, ok bool, err error) {
	h3 := c.servesUDP() && c.Protocol != UDP // HTTPS with HTTP3: a TCP and a UDP socket
	switch {
	case h3 && c.PacketConn != nil:
		if c.Listener == nil {
			return s, at, false, configErr("PacketConn", fmt.Sprintf("%T", c.PacketConn), "HTTP/3's socket goes beside a handed Listener, on its address")
		}
		ln, isTCP := c.Listener.(*net.TCPListener)
		pc, isUDP := c.PacketConn.(*net.UDPConn)
		switch {
		case !isTCP:
			return s, at, false, configErr("Listener", fmt.Sprintf("%T", c.Listener), "want a *net.TCPListener")
		case !isUDP:
			return s, at, false, configErr("PacketConn", fmt.Sprintf("%T", c.PacketConn), "want a *net.UDPConn")
		}
		at = ln.Addr().(*net.TCPAddr).AddrPort()
		if u := pc.LocalAddr().(*net.UDPAddr).AddrPort(); u != at {
			return s, at, false, configErr("PacketConn", u.String(), "HTTP/3 serves the Listener's address, "+at.String())
		}
		s.tcp, s.udp = []*net.TCPListener{ln}, []*net.UDPConn{pc}
	case c.Listener != nil && c.PacketConn != nil:
		return s, at, false, configErr("PacketConn", fmt.Sprintf("%T", c.PacketConn), "not with Listener: a listener has one protocol (https with HTTP.HTTP3 excepted)")
	case c.Listener != nil:
		ln, isTCP := c.Listener.(*net.TCPListener)
		if !isTCP {
			return s, at, false, configErr("Listener", fmt.Sprintf("%T", c.Listener), "want a *net.TCPListener")
		}
		s.tcp = []*net.TCPListener{ln}
		at = ln.Addr().(*net.TCPAddr).AddrPort()
	case c.PacketConn != nil:
		pc, isUDP := c.PacketConn.(*net.UDPConn)
		if !isUDP {
			return s, at, false, configErr("PacketConn", fmt.Sprintf("%T", c.PacketConn), "want a *net.UDPConn")
		}
		s.udp = []*net.UDPConn{pc}
		at = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	default:
		return s, at, false, nil
	}
	return s, at, true, nil
}

// fitHanded checks Port, EndPort and Host against a handed socket bound
// to at and fills Port from it.
func (c *Config) fitHanded(field string, at netip.AddrPort) error {
	bound := int(at.Port())
	switch {
	case c.EndPort != 0:
		return configErr("EndPort", c.EndPort, "not with a handed "+field+": it is one port")
	case c.Port != 0 && c.Port != bound:
		return configErr("Port", c.Port, fmt.Sprintf("the handed %s is bound to port %d", field, bound))
	}
	c.Port = bound
	if c.Host == "" {
		return nil
	}
	ip := at.Addr().Unmap()
	h, err := netip.ParseAddr(c.Host)
	if (err == nil && h.Unmap() == ip) || (c.Host == "localhost" && ip.IsLoopback()) {
		return nil
	}
	return configErr("Host", c.Host, fmt.Sprintf("the handed %s is bound to %s", field, ip))
}

// twinTries is how many ephemeral ports bindTwins tries.
const twinTries = 16

// bindTwins binds an ephemeral port on host for both TCP and UDP
// (HTTP/3 beside HTTPS on Port 0): listen has the system pick a free TCP
// port, and the UDP port of the same number may be another program's, so
// on EADDRINUSE it lets that TCP port go and takes another, up to
// twinTries times.
func bindTwins(host string, listen func() (net.Listener, error)) (*net.TCPListener, *net.UDPConn, error) {
	var err error
	for range twinTries {
		var ln net.Listener
		if ln, err = listen(); err != nil {
			return nil, nil, err
		}
		tl := ln.(*net.TCPListener)
		port := tl.Addr().(*net.TCPAddr).Port
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return tl, pc.(*net.UDPConn), nil
		}
		tl.Close()
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("listener: no ephemeral port free for both TCP and UDP in %d tries: %w", twinTries, err)
}
