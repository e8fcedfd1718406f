// Command quic shows QUIC connections keeping their backend when the client
// migrates, behind an lbkit UDP listener.
//
// It runs everything in one process: a few quic-go servers whose Transports
// issue IETF QUIC-LB connection IDs (quiclb.Generator, each server with its
// own server ID), a UDP listener with the qch scheduler and a quiclb.Router
// in front of them, and a client that connects, then moves its connection to
// a new UDP socket (AddPath, Probe, Switch) chosen so that a four-tuple hash
// would send it to another backend. The router reads the server ID in the
// connection ID and keeps the connection where it is. The program prints the
// backend before and after, and exits 0 only if they are the same.
//
//	go run ./examples/quic
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/quiclb"
	"github.com/lbkit/lbkit/listener"
)

// alpn is the application protocol the demo servers and client speak: a
// stream carries one line, the server answers with its name and the line.
const alpn = "lbkit-quic-demo"

// config is what the flags set.
type config struct {
	// Listen is the load balancer's UDP address, host:port.
	Listen string
	// Backends is the number of QUIC servers, 2–16.
	Backends int
	// Timeout bounds the whole demo.
	Timeout time.Duration
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:4433", "load balancer UDP `address` (port 0: a free port, printed at start)")
	flag.IntVar(&cfg.Backends, "backends", 3, "number of QUIC backends (2–16)")
	flag.DurationVar(&cfg.Timeout, "timeout", 15*time.Second, "bound on the whole demo")
	flag.Parse()
	if os.Getenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING") == "" {
		os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quic:", err)
		os.Exit(1)
	}
}

// run starts the servers and the listener, runs the migrating client and
// tears everything down. It returns an error if the client lost its
// backend.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	if cfg.Backends < 2 || cfg.Backends > 16 {
		return fmt.Errorf("-backends %d out of range 2–16", cfg.Backends)
	}
	host, p, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("-listen: port %q is not a number", p)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("-listen: host %q is not an IP address", host)
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}

	// One QUIC-LB configuration, shared by the load balancer and every
	// server: codepoint 1, 2-octet server IDs, 5-octet nonces, and a key
	// so observers cannot read the server ID (four-pass encryption).
	lbCfg := quiclb.Config{ConfigID: 1, Key: make([]byte, quiclb.KeyLen)}
	if _, err := rand.Read(lbCfg.Key); err != nil {
		return err
	}
	serverTLS, clientTLS, err := demoTLS()
	if err != nil {
		return err
	}

	// The servers also share the stateless reset and token keys, as the
	// quiclb docs ask.
	servers := &cluster{}
	defer servers.close()
	var reset quic.StatelessResetKey
	var token quic.TokenGeneratorKey
	rand.Read(reset[:])
	rand.Read(token[:])
	ids := quiclb.ServerIDs{}
	var backends []balancer.Backend
	for i := range cfg.Backends {
		name := fmt.Sprintf("q%d", i+1)
		id, err := quiclb.MakeServerID([]byte{0x10, byte(i + 1)})
		if err != nil {
			return err
		}
		gen, err := quiclb.NewGenerator(quiclb.GeneratorConfig{Config: lbCfg, ServerID: id})
		if err != nil {
			return err
		}
		addr, err := servers.start(name, gen, &reset, &token, serverTLS)
		if err != nil {
			return err
		}
		ids[id] = name
		backends = append(backends, balancer.Backend{ID: name, Addr: addr, Weight: balancer.DefaultWeight})
		fmt.Fprintf(out, "backend %s on %s, QUIC-LB server ID %s\n", name, addr, id)
	}

	// The load balancer: qch, the router, and the connection ID length.
	dec, err := quiclb.NewDecoder(lbCfg)
	if err != nil {
		return err
	}
	router, err := quiclb.NewRouter(quiclb.RouterConfig{Decoder: dec, ServerIDs: ids})
	if err != nil {
		return err
	}
	qch, err := balancer.ParseScheduler(balancer.NameQCH)
	if err != nil {
		return err
	}
	group, err := balancer.New(balancer.Config{Scheduler: qch}, backends...)
	if err != nil {
		return err
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{
		ID:     "quic-demo",
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := inst.Add(listener.Config{
		Protocol:         listener.UDP,
		Host:             host,
		Port:             port,
		Group:            group,
		QUICRouter:       router,
		QUICConnIDLength: lbCfg.ConnIDLen(),
	})
	if err != nil {
		return err
	}
	defer func() {
		// UDP flows end only by idle timeout, and the client is gone by
		// now: cut them at once rather than wait.
		stopCtx, cancel := context.WithCancel(context.Background())
		cancel()
		if serr := inst.Stop(stopCtx); serr != nil && !errors.Is(serr, context.Canceled) && err == nil {
			err = serr
		}
	}()
	lbAddr := netip.AddrPortFrom(ip.Unmap(), uint16(l.Port())) // the bound port, for -listen :0 too
	fmt.Fprintf(out, "load balancer on udp %s: qch with a QUIC-LB router (%s, %d-octet connection IDs)\n",
		lbAddr, dec.Mode(), lbCfg.ConnIDLen())

	// The client, on a socket of its own so it can move to another.
	cl := &client{}
	defer cl.close()
	tr, err := cl.transport()
	if err != nil {
		return err
	}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(lbAddr), clientTLS, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	cl.conn = conn
	var before string
	for i := range 3 { // a few round trips, so the server's spare connection IDs arrive
		if before, err = ask(ctx, conn, fmt.Sprintf("hello %d", i)); err != nil {
			return fmt.Errorf("before migrating: %w", err)
		}
	}
	fmt.Fprintf(out, "client %s: connected, served by %s\n", localAddr(tr), before)

	// A new socket whose four-tuple a hash would send elsewhere: only
	// the connection ID can keep the connection on its backend.
	var next *quic.Transport
	var hashed string
	for range 50 {
		if next, err = cl.transport(); err != nil {
			return err
		}
		p, err := group.Pick(balancer.Key{Src: localAddr(next), Dst: lbAddr})
		if err != nil {
			return err
		}
		p.Done(balancer.DoneInfo{}) // only asked where it would go
		if hashed = p.Member.ID(); hashed != before {
			break
		}
	}
	fmt.Fprintf(out, "client: migrating to %s (AddPath, Probe, Switch); a four-tuple hash would pick %s\n", localAddr(next), hashed)
	path, err := conn.AddPath(next)
	if err != nil {
		return fmt.Errorf("add path: %w", err)
	}
	if err := path.Probe(ctx); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := path.Switch(); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	after, err := ask(ctx, conn, "after migrating")
	if err != nil {
		return fmt.Errorf("after migrating: %w", err)
	}
	st := l.Stats()
	fmt.Fprintf(out, "client %s: served by %s\n", localAddr(next), after)
	fmt.Fprintf(out, "listener: %d flow(s) routed by server ID, %d by four-tuple\n", st.QUICRouted, st.QUICFallback)
	if after != before {
		return fmt.Errorf("connection moved from %s to %s", before, after)
	}
	fmt.Fprintf(out, "ok: the connection stayed on %s across the migration\n", before)
	return nil
}

// ask sends msg on a new stream and returns the name of the server that
// echoed it.
func ask(ctx context.Context, conn *quic.Conn, msg string) (string, error) {
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return "", err
	}
	if d, ok := ctx.Deadline(); ok {
		str.SetDeadline(d)
	}
	if _, err := io.WriteString(str, msg+"\n"); err != nil {
		return "", err
	}
	str.Close() // our side is done; the server echoes and closes its own
	b, err := io.ReadAll(str)
	if err != nil {
		return "", err
	}
	name, echo, _ := strings.Cut(string(b), "\n")
	if echo != msg+"\n" {
		return "", fmt.Errorf("echo %q, want %q", echo, msg+"\n")
	}
	return name, nil
}

// cluster is the QUIC servers and what stops them.
type cluster struct {
	ctx    context.Context
	cancel context.CancelFunc
	closer []io.Closer
	wg     sync.WaitGroup
}

// start runs a server that answers each stream with its name and an echo
// of what the client sent, issuing connection IDs from gen.
func (c *cluster) start(name string, gen *quiclb.Generator, reset *quic.StatelessResetKey, token *quic.TokenGeneratorKey, tlsConf *tls.Config) (string, error) {
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	tr := &quic.Transport{Conn: pc, ConnectionIDGenerator: gen, StatelessResetKey: reset, TokenGeneratorKey: token}
	ln, err := tr.Listen(tlsConf, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		pc.Close()
		return "", err
	}
	c.closer = append(c.closer, ln, tr, pc)
	c.wg.Go(func() {
		for {
			conn, err := ln.Accept(c.ctx)
			if err != nil {
				return
			}
			c.wg.Go(func() {
				defer conn.CloseWithError(0, "")
				for {
					str, err := conn.AcceptStream(c.ctx)
					if err != nil {
						return
					}
					c.wg.Go(func() {
						defer str.Close()
						if _, err := io.WriteString(str, name+"\n"); err != nil {
							return
						}
						io.Copy(str, io.LimitReader(str, 1<<10))
					})
				}
			})
		}
	})
	return pc.LocalAddr().String(), nil
}

func (c *cluster) close() {
	if c.cancel != nil {
		c.cancel()
	}
	for _, cl := range c.closer {
		cl.Close()
	}
	c.wg.Wait()
}

// client is the client connection and the transports it may use.
type client struct {
	conn *quic.Conn
	trs  []*quic.Transport
}

// transport returns a client Transport on a new loopback socket.
func (c *client) transport() (*quic.Transport, error) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: pc}
	c.trs = append(c.trs, tr)
	return tr, nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.CloseWithError(0, "bye")
	}
	for _, tr := range c.trs {
		tr.Close()
		tr.Conn.Close()
	}
}

func localAddr(tr *quic.Transport) netip.AddrPort {
	a := tr.Conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// demoTLS returns a server config with a fresh self-signed certificate for
// localhost and 127.0.0.1, and a client config that trusts it.
func demoTLS() (server, client *tls.Config, _ error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lbkit quic demo"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
		NextProtos:   []string{alpn},
	}
	client = &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{alpn}}
	return server, client, nil
}
