// Command clb is lbkit's demo load balancer: a CLB instance with TCP,
// UDP, HTTP and HTTPS listeners, run from a configuration file whose field
// names follow the CLB API, or, with no arguments, a self-contained demo
// on 127.0.0.1 with three in-process backends. See README.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lbkit/lbkit/examples/clb/admin"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/tlspolicy"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	started := time.Now()
	fs := flag.NewFlagSet("clb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config       = fs.String("config", "", "configuration `file` (YAML or JSON), or etcd://HOST:PORT[,HOST:PORT…]/PREFIX to read it from etcd and follow it; without it, run the demo")
		listenAddr   = fs.String("listen-address", "", "the `IP` the listeners bind, overriding the configuration's ListenAddress (one per replica of a fleet sharing a configuration)")
		check        = fs.Bool("check", false, "validate the configuration and exit (0 ok, 1 with the errors on stderr)")
		portBase     = fs.Int("port-base", 8000, "demo ports are offsets from this `base`: http +80, redirect +81, admin +90, https +443, tcp +1000, udp +1001, backends +101.. and +111..")
		demoBack     = fs.Bool("demo-backends", false, "with -config, also start the three demo backends (as lb.yaml expects)")
		logFormat    = fs.String("log-format", "text", "log format: text or json")
		accessLog    = fs.Bool("access-log", true, "log one line per HTTP request (off for benchmarks)")
		drainTimeout = fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM or SIGINT, or after an upgrade (SIGUSR2), how long connections may finish")
		upgTimeout   = fs.Duration("upgrade-timeout", time.Minute, "on SIGUSR2, how long the new process may take to be ready before it is killed and this one keeps serving")
		pidFile      = fs.String("pid-file", "", "write the process ID to `file` when ready (a successor started by SIGUSR2 rewrites it when it is)")
		adminFlag    = fs.String("admin", "", "admin status `address`, or \"off\" for none (default: without -config 127.0.0.1:port-base+90; with -config the file's AdminAddress, else none)")
		adminTokens  = fs.String("admin-tokens", "", "`file` of the admin API's bearer tokens, one name:token a line (tokens of 16 bytes or more); without it the API refuses every write")
		adminTLS     = adminTLSFlags(fs)
		cpuProfile   = fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) to `file` until clb stops")
		etcdOpts     = etcdFlags(fs)
		quicLBID     = fs.String("quic-lb-server-id", "", "this replica's QUIC-LB server `ID` (hex, Fleet.QuicLb's ServerIdLength octets): https listeners with EnableHttp3 issue QUIC connection IDs that carry it")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "clb: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if _, err := netip.ParseAddr(*listenAddr); *listenAddr != "" && err != nil {
		fmt.Fprintf(stderr, "clb: -listen-address %q: want an IP address\n", *listenAddr)
		return 2
	}
	h3lb, err := parseQuicLbServerID(*quicLBID)
	if err != nil {
		fmt.Fprintln(stderr, "clb:", err)
		return 2
	}
	generation, err := parseGeneration(os.Getenv(generationEnv))
	if err != nil {
		fmt.Fprintln(stderr, "clb:", err)
		return 2
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	default:
		fmt.Fprintf(stderr, "clb: -log-format %q: want text or json\n", *logFormat)
		return 2
	}
	log := slog.New(h)
	if *portBase < 1 || *portBase+offTCP+1 > 65535 {
		fmt.Fprintf(stderr, "clb: -port-base %d: out of range 1–%d\n", *portBase, 65535-offTCP-1)
		return 2
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "clb:", err)
			return 1
		}
		defer stop()
	}
	upg, from, err := newUpgrader(*upgTimeout, *pidFile, log)
	if err != nil {
		fmt.Fprintln(stderr, "clb:", err)
		return 1
	}
	e, err := newEnv(from)
	if err != nil {
		fmt.Fprintln(stderr, "clb:", err)
		return 1
	}
	e.log, e.upg, e.h3lb = log, upg, h3lb
	e.qh = newQuicHandoff(generation, upg, log)
	if *accessLog {
		e.accessLog = log.With("log", "access")
	}

	var src *etcdSource // nil unless -config is etcd://…
	if strings.HasPrefix(*config, etcdScheme) {
		etcdOpts.Password = os.Getenv("CLB_ETCD_PASSWORD")
		if src, err = newEtcdSource(*config, *etcdOpts, log); err != nil {
			fmt.Fprintln(stderr, "clb:", err)
			return 2
		}
		defer src.close()
	}
	var snap etcdSnapshot // the etcd keys loadPlan read last
	// planOf plans f as this replica runs it.
	planOf := func(f *File) (*plan, error) {
		f.ListenAddress = cmp.Or(*listenAddr, f.ListenAddress)
		return planFile(f, e)
	}
	const host = "127.0.0.1"
	starting := true // until the first plan: loadPlan may fall back on -etcd-cache
	loadPlan := func() (*plan, error) {
		var f *File
		switch {
		case *config == "":
			f = demoFile(host, *portBase)
			ps := &problems{file: f.name}
			if f.validate(ps); ps.err() != nil {
				return nil, ps.err()
			}
		case src != nil:
			s, err := src.read(context.Background())
			if err != nil && starting && !*check {
				// A start while etcd is unreachable runs the last
				// configuration applied, if -etcd-cache kept one.
				c, cerr := src.cached()
				if cerr != nil {
					if !errors.Is(cerr, errNoCache) {
						err = fmt.Errorf("%w; and %w", err, cerr)
					}
					return nil, err
				}
				log.Warn("etcd unreachable: starting from the cached configuration; following etcd once it answers", "cache", etcdOpts.Cache, "revision", c.rev, "err", err.Error())
				s, err = c, nil
			}
			if err != nil {
				return nil, err
			}
			if f, err = src.file(s); err != nil {
				return nil, err
			}
			snap = s
		default:
			if f, err = LoadFile(*config); err != nil {
				return nil, err
			}
		}
		return planOf(f)
	}
	p, err := loadPlan()
	starting = false
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (%d listeners)\n", p.file.name, len(p.listeners))
		return 0
	}

	var tokens *admin.Tokens
	var tokErr error
	if *adminTokens != "" {
		tokens, tokErr = admin.LoadTokens(*adminTokens)
	}
	adminTLSConfig, tlsErr := admin.LoadTLS(*adminTLS)
	if err := errors.Join(tokErr, tlsErr); err != nil {
		fmt.Fprintln(stderr, "clb:", err)
		return 2
	}

	var backends *demoBackends
	if *config == "" || *demoBack {
		if backends, err = startDemoBackends(host, *portBase, upg); err != nil {
			fmt.Fprintln(stderr, "clb:", err)
			return 1
		}
		defer backends.close()
	}
	a, err := start(p, e)
	if err != nil {
		fmt.Fprintln(stderr, "clb:", err)
		return 1
	}
	a.waitProbed() // ready means the backends that passed take traffic
	if src != nil {
		// Before the admin server shows it: the plan of snap runs.
		src.applied(snap, nil)
	}
	ctl := &control{a: a, planOf: planOf, etcd: src, upgrades: make(chan chan upgradeResult)}

	// The admin status server: off the public listeners. It follows
	// a.inst across reloads.
	var adminSrv *admin.Server
	if adminAddr := adminAddress(*adminFlag, *config != "", p.file, addrOf(host, *portBase+offAdmin)); adminAddr != "" {
		ln, err := upg.listen(processKey("admin", "tcp", adminAddr), adminAddr)
		if err != nil {
			fmt.Fprintf(stderr, "clb: admin server: %v (set -admin or AdminAddress, or -admin off)\n", err)
			ctx, cancel := context.WithTimeout(context.Background(), *drainTimeout)
			a.stop(ctx)
			cancel()
			return 1
		}
		opts := admin.Options{Discovery: a.discoveryStatus, Runtime: ctl, Tokens: tokens, TLS: adminTLSConfig, Audit: log.With("log", "audit"), Process: a.processStatus(started, generation)}
		if src != nil {
			opts.Config = src.Status
		}
		srv := admin.New(a.inst, opts)
		go srv.Serve(ln)
		defer srv.Close()
		adminSrv = srv
		scheme := "http"
		if adminTLSConfig != nil {
			scheme = "https"
		}
		fmt.Fprintf(stdout, "Admin: %s://%s/  (status page; /status.json; /metrics; /api/; /login)\n\n", scheme, ln.Addr())
	}

	// Signals are caught before "clb: ready" is printed: a supervisor
	// may signal as soon as it reads it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := upg.readyToServe(); err != nil {
		log.Warn("ready, but", "err", err.Error())
	}
	printTable(stdout, a, *config == "", backends != nil, host, *portBase)
	logUnsupportedSuites(log, p)
	log.Info("clb ready", "instance", p.inst.ID, "listeners", len(p.listeners), "config", *config, "version", p.version, "generation", generation)

	// apply reloads to np, or logs why not; SIGHUP and etcd share it.
	apply := func(np *plan, err error) error {
		if a.refuse(err) != nil {
			log.Error("reload refused: configuration invalid, the old one keeps running", "config", *config, "err", err.Error())
			return err
		}
		if err := ctl.reload(np); errors.Is(err, errPartial) {
			log.Error("reload incomplete", "err", err)
			return err
		} else if a.refuse(err) != nil {
			log.Error("reload refused: the old configuration keeps running", "config", *config, "err", err.Error())
			return err
		}
		log.Info("reloaded", "config", *config, "listeners", len(np.listeners), "version", np.version)
		return nil
	}
	var updates <-chan etcdSnapshot // nil unless -config is etcd://…
	running := snap.rev             // the etcd revision of the plan running
	if src != nil {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go src.watch(ctx, snap)
		updates = src.updates
	}

	rotate := time.NewTicker(ticketRotation)
	defer rotate.Stop()
	for {
		var (
			sig          os.Signal
			upgradeReply chan upgradeResult // the API's, when it asked for the upgrade
		)
		select {
		case u := <-updates:
			if u.rev <= running { // a SIGHUP applied a newer read
				continue
			}
			f, err := src.file(u)
			var np *plan
			if err == nil {
				np, err = planOf(f)
			}
			err = apply(np, err)
			src.applied(u, err)
			if err == nil {
				running = u.rev
			}
			continue
		case <-rotate.C:
			if err := ctl.rotateTicketKeys(); err != nil {
				log.Error("session-ticket key rotation", "err", err.Error())
			}
			continue
		case upgradeReply = <-ctl.upgrades:
			sig = syscall.SIGUSR2
		case sig = <-sigs:
		}
		if sig == syscall.SIGHUP {
			if *config == "" {
				log.Warn("reload refused", "err", errNoConfig)
				continue
			}
			if apply(loadPlan()) == nil && src != nil {
				running = snap.rev
				src.applied(snap, nil)
			}
			continue
		}
		retire := false
		if sig == syscall.SIGUSR2 {
			log.Info("upgrade: starting the new process", "exe", upg.exe, "generation", generation+1)
			pid, err := ctl.upgrade(upg, generation+1)
			if upgradeReply != nil {
				upgradeReply <- upgradeResult{pid, err}
			}
			if err != nil {
				log.Error("upgrade failed: this process keeps serving", "err", err.Error())
				continue
			}
			log.Info("upgrade: the new process is ready; this one stops accepting and retires its connections", "pid", pid)
			retire = true
		}
		log.Info("stopping: draining connections", "signal", sig.String(), "deadline", drainTimeout.String())
		ctx, cancel := context.WithTimeout(context.Background(), *drainTimeout)
		var adminDone sync.WaitGroup
		if retire && adminSrv != nil {
			// The successor serves the admin socket; requests here (the
			// POST /api/upgrade that asked for this) finish.
			adminDone.Go(func() { adminSrv.Shutdown(ctx) })
		}
		err := ctl.stop(ctx, retire)
		adminDone.Wait()
		cancel()
		if err != nil {
			log.Warn("stopped with connections cut at the deadline", "err", err)
		} else {
			log.Info("stopped")
		}
		return 0
	}
}

// adminAddress is where the admin server listens, "" for nowhere: the
// -admin flag, else the file's AdminAddress with -config (none if
// omitted, so two clb processes on one host need no flags), else the
// demo's address.
func adminAddress(flagValue string, withConfig bool, f *File, demo string) string {
	addr := flagValue
	switch {
	case addr != "":
	case withConfig:
		addr = f.AdminAddress
	default:
		addr = demo
	}
	if addr == off {
		return ""
	}
	return addr
}

// printTable prints what listens where and a few commands to try.
func printTable(w io.Writer, a *app, demo, backends bool, host string, base int) {
	fmt.Fprintf(w, "clb: instance %s\n\n", a.inst.ID())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  LISTENER\tADDRESS\tWHAT")
	for _, s := range a.plan.listeners {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.name, addrOf(a.plan.file.listenHost(), s.src.ListenerPort), describeListener(s))
	}
	tw.Flush()
	if backends {
		fmt.Fprintln(w, "\nDemo backends (name on the first line of each HTTP answer; TCP and UDP echo):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for i, name := range demoBackendNames {
			fmt.Fprintf(tw, "  %s\thttp %s\techo tcp+udp %s\n", name, addrOf(host, base+offBackendHTTP+i), addrOf(host, base+offBackendEcho+i))
		}
		tw.Flush()
	}
	if demo {
		h := func(off int) string { return addrOf(host, base+off) }
		fmt.Fprintf(w, `
Try:
  curl http://%[1]s/                                   # a backend's name, round robin
  curl -c jar http://%[1]s/ ; curl -b jar http://%[1]s/   # SERVERID cookie: same backend
  curl http://%[1]s/api                                # forwarding rule: always backend-c
  curl -i http://%[2]s/                                # 301 to https
  curl -k https://%[3]s/                               # HTTP/2, tls_cipher_policy_1_2_strict_with_1_3; Alt-Svc offers HTTP/3 (udp, same port)
  curl -kv --resolve %[6]s:%[7]d:%[8]s https://%[6]s:%[7]d/ 2>&1 | grep subject:   # extension domain
  echo hello | nc %[8]s %[4]s                           # TCP echo
  echo hello | nc -u -w1 %[8]s %[5]s                    # UDP echo
`, h(offHTTP), h(offRedirect), h(offHTTPS), portOf(base+offTCP), portOf(base+offUDP), demoShopDomain, base+offHTTPS, host)
	}
	fmt.Fprintln(w, "\nCtrl-C (SIGINT) or SIGTERM drains and stops; SIGHUP reloads -config; SIGUSR2 upgrades to the binary on disk.")
	fmt.Fprintln(w, "clb: ready")
}

func portOf(p int) string { return fmt.Sprint(p) }

// describeListener summarises a listener for the table.
func describeListener(s *lspec) string {
	l := s.src
	var parts []string
	if s.cfg.HTTP.RedirectToPort != 0 {
		return fmt.Sprintf("redirect to https port %d", s.cfg.HTTP.RedirectToPort)
	}
	ids := make([]string, 0, len(s.main))
	for _, b := range s.main {
		ids = append(ids, b.ID)
	}
	if s.disc != nil {
		ids = append(ids, s.disc.String())
	}
	parts = append(parts, s.sched+" over "+strings.Join(ids, ","))
	if switchOn(l.StickySession, false) {
		parts = append(parts, "cookie "+map[bool]string{true: "rewrite " + l.Cookie, false: "insert SERVERID"}[l.StickySessionType == "server"])
	}
	if l.PersistenceTimeout > 0 {
		parts = append(parts, fmt.Sprintf("source-IP persistence %ds", l.PersistenceTimeout))
	}
	if s.cfg.HealthCheck != nil {
		parts = append(parts, "health "+s.cfg.HealthCheck.Kind.String())
	}
	if s.cfg.ACL != nil {
		parts = append(parts, fmt.Sprintf("acl %s %s", l.AclType, l.AclId))
	}
	if v := s.cfg.ProxyProtocol; v != 0 {
		parts = append(parts, fmt.Sprintf("proxy v%d", v))
	}
	if l.ListenerProtocol == "https" {
		parts = append(parts, "policy "+tlsPolicy(s).Name, "cert "+l.ServerCertificateId)
		for _, d := range l.DomainExtensions {
			parts = append(parts, d.Domain+"→"+d.ServerCertificateId)
		}
		if s.cfg.HTTP.NoHTTP2 {
			parts = append(parts, "http/1.1")
		} else {
			parts = append(parts, "h2")
		}
		if s.cfg.HTTP.HTTP3 {
			parts = append(parts, "h3 (udp)")
		}
	}
	if len(l.Rules) > 0 {
		parts = append(parts, fmt.Sprintf("%d rules", len(l.Rules)))
	}
	return strings.Join(parts, ", ")
}

// tlsPolicy is the TLS policy of an https listener: its own, or the
// library's default.
func tlsPolicy(s *lspec) *tlspolicy.Policy {
	return cmp.Or(s.cfg.HTTP.TLSPolicy, tlspolicy.Default())
}

// logUnsupportedSuites logs, once per TLS policy the listeners use, the
// suites of that policy crypto/tls cannot offer, which clients therefore
// never get. It runs at start only: reloads do not repeat it.
func logUnsupportedSuites(log *slog.Logger, p *plan) {
	seen := map[string]bool{}
	for _, s := range p.listeners {
		if s.cfg.Protocol != listener.HTTPS {
			continue
		}
		pol := tlsPolicy(s)
		if seen[pol.Name] {
			continue
		}
		seen[pol.Name] = true
		var names []string
		for _, u := range pol.Unsupported() {
			names = append(names, u.Name)
		}
		if len(names) > 0 {
			log.Warn("TLS policy lists cipher suites crypto/tls cannot offer; they are left out",
				"policy", pol.Name, "suites", strings.Join(names, ","))
		}
	}
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
