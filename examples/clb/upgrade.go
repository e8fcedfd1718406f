package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/internal/netx"
	"github.com/lbkit/lbkit/listener"
)

// A binary upgrade (SIGUSR2) starts this process's successor — the
// executable at the path this one was started from, so a new build
// installed there, with the same arguments, working directory and
// environment — and hands it every listening socket open, the admin
// server's included. The successor serves them from its start; once it
// is ready (its listeners started, its first round of health checks
// done) it says so, and this process stops accepting, retires its
// connections within -drain-timeout and exits. Connections are never
// refused: the kernel's socket, with its queue of connections not yet
// accepted, stays open throughout, shared by both processes.
//
// Why not github.com/cloudflare/tableflip, which does this for a fixed
// set of sockets: it keeps every socket it has passed on or inherited
// open for the life of the process, with no way to release one, while
// clb's sockets come and go with reloads and the runtime API. A port a
// reload removed would stay bound — connections queued unanswered, the
// port unbindable by the next reload — breaking the all-or-nothing
// reload. So the sockets are collected at the moment of the upgrade,
// and nothing of them stays after it, failed or not.

// handoffEnv marks a process started by an upgrade; it is read once and
// removed, so it does not reach the process's own successor twice.
const handoffEnv = "CLB_HANDOFF"

// The successor's descriptors, after stdin, stdout and stderr.
const (
	handoffFD = 3 // the handoff document, JSON, read to EOF
	readyFD   = 4 // one byte written when ready, then closed
	socketsFD = 5 // the sockets, in the document's order
)

// handoff is what a process hands its successor besides the sockets. It
// travels on a pipe only the successor reads, not in its environment
// (readable by its user in /proc).
type handoff struct {
	// Sockets names the descriptors from socketsFD on, in order: see
	// socketKey and processKey.
	Sockets []string
	// StickyKey is the process's SERVERID cookie key (a Fleet CookieKey,
	// when the configuration gives one, takes its place).
	StickyKey []byte
	// TicketKeys are the process's TLS session-ticket keys, the newest
	// first (a Fleet's SessionTicketKeys take their place).
	TicketKeys [][]byte
	// Health is the health of the members of each health-checked
	// listener's groups: by listener name, by group (the listener's
	// own, then its forwarding rules'), by member ID. The successor
	// starts its members so, as HAProxy's server-state file does: it
	// serves the handed sockets as soon as its listeners start, and
	// its own first round of health checks then only confirms — without
	// this, every backend of a health-checked listener would be
	// unhealthy (503) until that round ended.
	Health map[string][]map[string]bool
}

// socketKey names the socket on network ("tcp" or "udp") of a listener
// with cfg's host and port: listeners of a predecessor and its successor
// that bind the same address share it. TCP, HTTP and HTTPS listeners
// share the tcp port space, UDP listeners and HTTP/3 the udp one.
func socketKey(network string, cfg listener.Config) string {
	return network + " " + net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
}

// socketNetwork tells a socket's port space by its type.
func socketNetwork(f *os.File) (string, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return "", err
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) { typ, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE) }); err != nil {
		return "", err
	}
	if serr != nil {
		return "", serr
	}
	if typ == syscall.SOCK_DGRAM {
		return "udp", nil
	}
	return "tcp", nil
}

// processKey names a socket the process holds for its life: the admin
// server's ("admin"), the demo backends'.
func processKey(what, network, addr string) string { return what + " " + network + " " + addr }

// upgrader hands sockets and keys from a process to its successor: the
// successor's side (inherit, hand, listen, readyToServe) and the
// predecessor's (upgrade). Its methods are safe for concurrent use.
type upgrader struct {
	exe, dir string        // what a successor runs, and where
	timeout  time.Duration // how long a successor may take to be ready
	pidFile  string        // written when ready; "" for none
	log      *slog.Logger

	mu        sync.Mutex
	inherited map[string]*os.File          // from the predecessor, until ready
	health    map[string][]map[string]bool // from the predecessor, until ready
	ready     *os.File                     // the predecessor's ready pipe; nil once told, or without one
	own       []ownSocket                  // sockets held for the process's life, handed on at an upgrade
}

// ownSocket is a socket the process holds for its life.
type ownSocket struct {
	key    string
	socket syscall.Conn
	addr   net.Addr
}

// newUpgrader returns the process's upgrader and, when a predecessor
// started it, what that one handed over (nil otherwise).
func newUpgrader(timeout time.Duration, pidFile string, log *slog.Logger) (*upgrader, *handoff, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade: %w", err)
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade: %w", err)
	}
	u := &upgrader{exe: exe, dir: dir, timeout: timeout, pidFile: pidFile, log: log, inherited: map[string]*os.File{}}
	if os.Getenv(handoffEnv) == "" {
		return u, nil, nil
	}
	os.Unsetenv(handoffEnv)
	h, err := u.inherit()
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade: from the previous process: %w", err)
	}
	return u, h, nil
}

// inherit reads the handoff document and takes the descriptors it
// names.
func (u *upgrader) inherit() (*handoff, error) {
	doc := os.NewFile(handoffFD, "handoff")
	u.ready = os.NewFile(readyFD, "ready")
	if doc == nil || u.ready == nil {
		return nil, errors.New("descriptors 3 and 4 missing")
	}
	var h handoff
	err := json.NewDecoder(doc).Decode(&h)
	doc.Close()
	if err != nil {
		return nil, fmt.Errorf("handoff document: %w", err)
	}
	for _, k := range h.TicketKeys {
		if len(k) != 32 {
			return nil, fmt.Errorf("handoff document: a session-ticket key of %d bytes, want 32", len(k))
		}
	}
	u.health = h.Health
	syscall.CloseOnExec(readyFD) // not for a successor of this process
	for i, key := range h.Sockets {
		fd := socketsFD + i
		syscall.CloseOnExec(fd)
		if f := os.NewFile(uintptr(fd), key); f != nil {
			u.inherited[key] = f
		}
	}
	return &h, nil
}

// take returns the inherited socket key names, or nil; the caller closes
// it.
func (u *upgrader) take(key string) *os.File {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	f := u.inherited[key]
	delete(u.inherited, key)
	return f
}

// hand gives each listener of cfgs that binds one port the socket the
// predecessor served that address on, if it handed one; the others bind
// their ports as usual. On error it has handed what it had before it.
// A nil *upgrader hands nothing.
func (u *upgrader) hand(cfgs []listener.Config) error {
	for i := range cfgs {
		c := &cfgs[i]
		if c.EndPort != 0 || c.Listener != nil || c.PacketConn != nil {
			continue
		}
		var err error
		if c.Protocol == listener.UDP {
			c.PacketConn, err = u.takePacketConn(socketKey("udp", *c))
		} else {
			c.Listener, err = u.takeListener(socketKey("tcp", *c))
			if err == nil && c.Listener != nil && c.Protocol == listener.HTTPS && c.HTTP.HTTP3 {
				// HTTP/3's socket goes beside the TCP one; without the
				// TCP one the listener binds both.
				c.PacketConn, err = u.takePacketConn(socketKey("udp", *c))
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// takeListener returns the inherited TCP socket key names, or nil.
func (u *upgrader) takeListener(key string) (net.Listener, error) {
	f := u.take(key)
	if f == nil {
		return nil, nil
	}
	defer f.Close() // the socket gets a descriptor of its own
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("upgrade: inherited socket %s: %w", key, err)
	}
	return ln, nil
}

// takePacketConn is takeListener for a UDP socket.
func (u *upgrader) takePacketConn(key string) (net.PacketConn, error) {
	f := u.take(key)
	if f == nil {
		return nil, nil
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("upgrade: inherited socket %s: %w", key, err)
	}
	return pc, nil
}

// seedHealth starts the members of each health-checked listener of
// specs healthy or not as the predecessor last saw them (see
// handoff.Health). It acts until ready: later changes start their
// members as usual.
func (u *upgrader) seedHealth(specs []*lspec) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range specs {
		seen := u.health[s.name]
		if s.cfg.HealthCheck == nil || seen == nil {
			continue
		}
		for i, g := range groupsOf(s.cfg) {
			if i >= len(seen) {
				break
			}
			for id, healthy := range seen[i] {
				g.SetHealthy(id, healthy) // a member gone from the configuration is not found: nothing to seed
			}
		}
	}
}

// groupsOf returns a listener's groups: its own, then its forwarding
// rules'.
func groupsOf(cfg listener.Config) []*balancer.Group {
	gs := []*balancer.Group{cfg.Group}
	for _, r := range cfg.HTTP.Rules {
		gs = append(gs, r.Group)
	}
	return gs
}

// listen returns the TCP socket the process holds for its life as key
// (see processKey) on addr: inherited, or bound now. A nil *upgrader
// binds it.
func (u *upgrader) listen(key, addr string) (net.Listener, error) {
	ln, err := u.takeListener(key)
	if err == nil && ln == nil {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	u.keep(key, ln.(*net.TCPListener), ln.Addr())
	return ln, nil
}

// listenPacket is listen's UDP counterpart.
func (u *upgrader) listenPacket(key, addr string) (net.PacketConn, error) {
	pc, err := u.takePacketConn(key)
	if err == nil && pc == nil {
		pc, err = net.ListenPacket("udp", addr)
	}
	if err != nil {
		return nil, err
	}
	u.keep(key, pc.(*net.UDPConn), pc.LocalAddr())
	return pc, nil
}

// keep records s, a socket on addr, as one the process holds for its
// life.
func (u *upgrader) keep(key string, s syscall.Conn, addr net.Addr) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.own = append(u.own, ownSocket{key, s, addr})
}

// readyToServe is called once the process serves: it closes the
// inherited sockets nothing took (the new configuration no longer binds
// their addresses), writes the PID file and tells the predecessor,
// which then retires.
func (u *upgrader) readyToServe() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for key, f := range u.inherited {
		u.log.Info("upgrade: inherited socket not served by this configuration: closed", "socket", key)
		f.Close()
	}
	clear(u.inherited)
	u.health = nil
	var errs []error
	if u.pidFile != "" {
		if err := writeFileAtomic(u.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("-pid-file: %w", err))
		}
	}
	if u.ready != nil {
		if _, err := u.ready.Write([]byte{1}); err != nil {
			errs = append(errs, fmt.Errorf("upgrade: telling the previous process: %w", err))
		}
		u.ready.Close()
		u.ready = nil
	}
	return errors.Join(errs...)
}

// handed is a socket on its way to a successor.
type handed struct {
	key string
	f   *os.File
}

// files returns new descriptors of the sockets the process holds for
// its life.
func (u *upgrader) files() ([]handed, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var hs []handed
	for _, s := range u.own {
		f, err := netx.File(s.socket, s.addr)
		if err != nil {
			closeHanded(hs)
			return nil, fmt.Errorf("%s: %w", s.key, err)
		}
		hs = append(hs, handed{s.key, f})
	}
	return hs, nil
}

func closeHanded(hs []handed) {
	for _, h := range hs {
		h.f.Close()
	}
}

// upgrade starts the successor with generation, the sockets hs and
// what h holds besides, and waits until it is ready: then the caller
// retires this process. On error — the successor could not start,
// exited, or was not ready within the timeout and was killed — this
// process keeps serving as before: it closes its descriptors of hs
// either way, and nothing of the attempt stays.
func (u *upgrader) upgrade(generation int, h handoff, hs []handed) (pid int, err error) {
	defer closeHanded(hs)
	own, err := u.files()
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	defer closeHanded(own)
	hs = append(own, hs...)

	docR, docW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	defer docW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		docR.Close()
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	defer readyR.Close()
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr, docR, readyW}
	h.Sockets = nil
	for _, s := range hs {
		files = append(files, s.f)
		h.Sockets = append(h.Sockets, s.key)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, generationEnv+"=") || strings.HasPrefix(kv, handoffEnv+"=")
	})
	env = append(env, generationEnv+"="+strconv.Itoa(generation), handoffEnv+"=1")
	// The sockets' files come from netx.File (Listener.Files, u.files):
	// os.StartProcess takes their Fd and leaves them non-blocking.
	proc, err := os.StartProcess(u.exe, append([]string{u.exe}, os.Args[1:]...), &os.ProcAttr{Dir: u.dir, Env: env, Files: files})
	docR.Close()
	readyW.Close() // the successor's is the only writer: EOF if it exits
	if err != nil {
		return 0, fmt.Errorf("upgrade: starting %s: %w", u.exe, err)
	}
	exited := make(chan error, 1)
	go func() {
		st, err := proc.Wait()
		if err == nil {
			err = errors.New(st.String())
		}
		exited <- err
	}()
	// A successor that fails early may not read it all: the error that
	// counts is then its exit.
	json.NewEncoder(docW).Encode(h)
	docW.Close()
	ready := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := io.ReadFull(readyR, b[:])
		ready <- n == 1
	}()
	timer := time.NewTimer(u.timeout)
	defer timer.Stop()
	select {
	case ok := <-ready:
		if ok {
			return proc.Pid, nil
		}
		err = fmt.Errorf("upgrade: the new process (pid %d) exited: %v", proc.Pid, <-exited)
	case err = <-exited:
		err = fmt.Errorf("upgrade: the new process (pid %d) exited: %v", proc.Pid, err)
	case <-timer.C:
		proc.Kill()
		<-exited
		err = fmt.Errorf("upgrade: the new process (pid %d) was not ready after %s (-upgrade-timeout): killed", proc.Pid, u.timeout)
	}
	return 0, err
}

// listenerSockets returns descriptors of the sockets of a's running
// listeners, keyed for the successor (see socketKey).
func (a *app) listenerSockets() ([]handed, error) {
	var hs []handed
	for _, r := range a.running {
		fs, err := r.l.Files()
		if err != nil {
			closeHanded(hs)
			return nil, fmt.Errorf("listener %s: %w", r.l.Name(), err)
		}
		for i, f := range fs { // one port: a TCP socket, a UDP one, or both (HTTP/3)
			network, err := socketNetwork(f)
			if err != nil {
				for _, f := range fs[i:] {
					f.Close()
				}
				closeHanded(hs)
				return nil, fmt.Errorf("listener %s: %w", r.l.Name(), err)
			}
			hs = append(hs, handed{socketKey(network, r.spec.cfg), f})
		}
	}
	return hs, nil
}

// health returns the health of the members of a's health-checked
// listeners (see handoff.Health).
func (a *app) health() map[string][]map[string]bool {
	all := map[string][]map[string]bool{}
	for name, r := range a.running {
		if r.spec.cfg.HealthCheck == nil {
			continue
		}
		for _, g := range r.groups() {
			seen := map[string]bool{}
			for _, m := range g.Members() {
				seen[m.ID()] = m.Healthy()
			}
			all[name] = append(all[name], seen)
		}
	}
	return all
}
