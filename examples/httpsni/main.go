// Command httpsni is an HTTPS listener with extension domains: one
// certificate per domain pattern, chosen by the client's SNI name (exact
// names first, then the narrowest wildcard, else the default certificate),
// and optionally mutual TLS.
//
// Certificates are made at start-up by a throw-away CA whose certificate is
// written to a temporary directory for curl's --cacert; with -mtls a client
// certificate and key are written there too. The program prints which
// certificate each of a few names gets, and curl lines to try.
//
//	go run ./examples/httpsni -mtls
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/httpproxy"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/tlspolicy"
)

// config is what the flags set.
type config struct {
	// Listen is the listener's address, host:port.
	Listen string
	// Backends are host:port entries; if empty, a demo backend is
	// started on loopback.
	Backends []string
	// MTLS requires clients to present a certificate from the demo CA.
	MTLS bool
	// Policy names the TLS security policy.
	Policy string
	// Dir receives ca.pem (and with MTLS client.pem, client-key.pem). If
	// empty, a temporary directory removed at exit is used.
	Dir string

	// ready, if set, is called once the listener runs.
	ready func(r readyInfo)
}

// readyInfo tells a test where things are.
type readyInfo struct {
	addr   string
	dir    string
	ca     *demoCA
	client *tls.Certificate
}

// domains are the extension domains, each with a certificate of its own.
var domains = []string{"a.example.test", "*.b.example.test"}

// defaultName is the default certificate's name.
const defaultName = "default.example.test"

// probes are the names whose certificate the program shows; "" sends no SNI.
var probes = []string{"a.example.test", "x.b.example.test", "b.example.test", "www.other.test", ""}

func main() {
	cfg := config{}
	var backends string
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "listener `address` (port 0: a free port, printed at start)")
	flag.StringVar(&backends, "backends", "", "comma-separated backends `host:port`; empty starts a demo backend")
	flag.BoolVar(&cfg.MTLS, "mtls", false, "require client certificates (mutual TLS)")
	flag.StringVar(&cfg.Policy, "policy", tlspolicy.Policy12StrictWith13, "TLS security `policy`")
	flag.StringVar(&cfg.Dir, "dir", "", "`directory` for the CA and client PEM files; empty: a temporary one")
	flag.Parse()
	if backends != "" {
		cfg.Backends = strings.Split(backends, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "httpsni:", err)
		os.Exit(1)
	}
}

// run serves the HTTPS listener until ctx is done.
func run(ctx context.Context, cfg config, out io.Writer) error {
	host, p, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("-listen: port %q is not a number", p)
	}
	policy, err := tlspolicy.Lookup(cfg.Policy)
	if err != nil {
		return fmt.Errorf("-policy: %w", err)
	}

	// Certificates: the default, one per extension domain, and the CA
	// file curl checks them with.
	ca, err := newDemoCA()
	if err != nil {
		return err
	}
	def, err := ca.server(defaultName)
	if err != nil {
		return err
	}
	certs := map[string]*tls.Certificate{}
	for _, d := range domains {
		if certs[d], err = ca.server(d); err != nil {
			return err
		}
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "httpsni-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o600); err != nil {
		return err
	}
	var client *tls.Certificate
	if cfg.MTLS {
		if client, err = ca.client("alice"); err != nil {
			return err
		}
		if err := writePEM(dir, "client.pem", "client-key.pem", client); err != nil {
			return err
		}
	}

	var backends []balancer.Backend
	if len(cfg.Backends) == 0 {
		addr, stopDemo, err := startDemoBackend()
		if err != nil {
			return err
		}
		defer stopDemo()
		backends = append(backends, balancer.Backend{ID: "demo", Addr: addr, Weight: balancer.DefaultWeight})
	}
	for _, b := range cfg.Backends {
		b = strings.TrimSpace(b)
		backends = append(backends, balancer.Backend{ID: b, Addr: b, Weight: balancer.DefaultWeight})
	}
	group, err := balancer.New(balancer.Config{}, backends...)
	if err != nil {
		return fmt.Errorf("-backends: %w", err)
	}

	opts := listener.HTTPOptions{
		Certificate: def,
		Domains:     certs,
		TLSPolicy:   policy,
		Options:     httpproxy.Options{XForwardedProto: true},
	}
	if cfg.MTLS {
		opts.ClientCAs = ca.pool()
		opts.ClientCertHeaders = true
	}
	inst, err := listener.NewInstance(listener.InstanceConfig{
		ID:     "httpsni",
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	l, err := inst.Add(listener.Config{Protocol: listener.HTTPS, Host: host, Port: port, Group: group, HTTP: opts})
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(l.Port())) // the bound port, for -listen :0 too
	mtls := "off"
	if cfg.MTLS {
		mtls = "on (client certificates from the demo CA)"
	}
	fmt.Fprintf(out, "httpsni: https://%s, policy %s, mutual TLS %s\n", addr, policy.Name, mtls)

	// Which certificate each name gets, from real handshakes.
	fmt.Fprintln(out, "certificates by SNI name:")
	for _, name := range probes {
		cn, err := servedCN(addr, name, client)
		label := name
		if label == "" {
			label = "(no SNI)"
		}
		if err != nil {
			fmt.Fprintf(out, "  %-18s → handshake failed: %v\n", label, err)
			continue
		}
		fmt.Fprintf(out, "  %-18s → %s\n", label, cn)
	}

	files := "ca.pem"
	curl := "curl --cacert " + filepath.Join(dir, "ca.pem")
	if cfg.MTLS {
		files += " client.pem client-key.pem"
		curl += " --cert " + filepath.Join(dir, "client.pem") + " --key " + filepath.Join(dir, "client-key.pem")
	}
	fmt.Fprintf(out, "files in %s: %s\n", dir, files)
	fmt.Fprintln(out, "try:")
	for _, name := range []string{"a.example.test", "x.b.example.test"} {
		fmt.Fprintf(out, "  %s --resolve %s:%d:%s https://%s:%d/\n", curl, name, port, host, name, port)
	}
	if cfg.ready != nil {
		cfg.ready(readyInfo{addr: addr, dir: dir, ca: ca, client: client})
	}

	<-ctx.Done()
	fmt.Fprintln(out, "httpsni: stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := inst.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// servedCN shakes hands with the listener at addr as name (no SNI if
// empty) and returns the subject of the certificate it served. It only
// looks at the certificate, so it does not verify it: the default
// certificate does not cover the names that fall through to it.
func servedCN(addr, name string, client *tls.Certificate) (string, error) {
	conf := &tls.Config{ServerName: name, InsecureSkipVerify: true}
	if client != nil {
		conf.Certificates = []tls.Certificate{*client}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.String(), nil
}

// startDemoBackend starts an HTTP server on loopback that answers with
// the host asked for and the client-certificate headers the listener sent.
func startDemoBackend() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend: host %s, X-Forwarded-Proto %s", r.Host, r.Header.Get("X-Forwarded-Proto"))
			if v := r.Header.Get("X-Client-Cert-Verify"); v != "" {
				fmt.Fprintf(w, ", client certificate %s (%s)", r.Header.Get("X-Client-Cert-Subject-DN"), v)
			}
			fmt.Fprintln(w)
		}),
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	return ln.Addr().String(), func() { srv.Close(); wg.Wait() }, nil
}
