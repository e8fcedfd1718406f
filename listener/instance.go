package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
)

// InstanceConfig describes a load-balancer instance.
type InstanceConfig struct {
	// ID identifies the instance, e.g. "lb-demo" (sent as the SLB-ID
	// header by HTTP listeners). 1–256 characters. Required.
	ID string
	// Address is the instance's service address (the SLB-IP header).
	// Optional.
	Address netip.Addr
	// Bandwidth caps the instance in Mbps; 0 (the default) is uncapped.
	// The caps of its listeners may not sum to more, and the listeners
	// without a cap of their own share one limiter at this rate.
	Bandwidth int
	// Logger receives structured logs. If nil, slog.Default().
	Logger *slog.Logger
}

// Instance is a load-balancer instance: an ID, a service address, an
// optional total bandwidth cap, and the listeners it owns.
//
// Create one with NewInstance, add listeners with Add, change several at
// once, all or nothing, with Apply, and stop them all with Stop. An
// Instance is safe for concurrent use.
type Instance struct {
	cfg    InstanceConfig
	limits *limits // shared by uncapped listeners; nil if uncapped

	mu        sync.Mutex
	listeners []*Listener
}

// NewInstance returns an instance with no listeners.
func NewInstance(cfg InstanceConfig) (*Instance, error) {
	if n := len(cfg.ID); n < 1 || n > 256 {
		return nil, configErr("ID", cfg.ID, "want 1–256 characters")
	}
	if err := checkBandwidth(cfg.Bandwidth); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("instance", cfg.ID)
	return &Instance{cfg: cfg, limits: newLimits(cfg.Bandwidth)}, nil
}

// ID returns the instance ID.
func (in *Instance) ID() string { return in.cfg.ID }

// Address returns the instance's service address.
func (in *Instance) Address() netip.Addr { return in.cfg.Address }

// Add validates cfg, creates the listener and, unless cfg.Stopped, starts
// it. A bad field, a name or port already in use, a bandwidth cap beyond
// the instance's, or a bind failure refuses the listener and leaves the
// instance as it was. It is Apply with one listener to add.
func (in *Instance) Add(cfg Config) (*Listener, error) {
	ls, err := in.Apply(context.Background(), Change{Add: []Config{cfg}})
	if ae, ok := errors.AsType[*AddError](err); ok {
		return nil, ae.Err
	}
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// A Change is a set of changes to an instance's listeners that
// Instance.Apply makes together, or not at all.
type Change struct {
	// Remove names the listeners to remove: each is stopped gracefully
	// (Listener.Stop) once the rest of the change is in place.
	Remove []string
	// Add configures the listeners to add, as Instance.Add takes them.
	// One handed no socket takes over, port by port, the sockets of
	// removed running listeners on the same Host and ports (both TCP,
	// HTTP or HTTPS, or both UDP) instead of binding them, so those ports
	// never stop accepting; it binds the others. Names and ports of
	// removed listeners are free for these.
	Add []Config
	// Bandwidth sets the caps of kept listeners in Mbps, by name, as
	// Listener.SetBandwidth does. The instance's cap bounds the caps as
	// they are after the whole change.
	Bandwidth map[string]int
	// Switched, if set, is called with the added listeners once the
	// change is in place and before Apply waits for the removed
	// listeners' connections, so that what goes with the change (live
	// updates of kept listeners, say) need not wait for their drain. It
	// is not called when the change is refused.
	Switched func(added []*Listener)
}

// Apply makes the change ch: it adds the listeners of ch.Add (started
// unless their Config.Stopped), sets the caps of ch.Bandwidth, removes
// the listeners of ch.Remove and returns the added listeners in the order
// of ch.Add. Everything that can fail happens before the instance
// changes: every Config is validated, names, ports and the bandwidth cap
// are checked against the instance as it will be, every port is bound or
// taken over, every added listener is started; on an error the instance
// and its kept and removed listeners are as they were, and a started
// added listener has been stopped again. An error about an added
// listener is an *AddError. Removed listeners stop accepting once the
// added ones serve; Apply then waits for their connections until ctx is
// done and returns the errors of those stops, the change being made. A
// removed listener whose socket an added one took over (same port)
// retires (Listener.Retire) rather than stops, so that the replacement
// fails no request; a removed UDP listener whose socket was taken over
// stops reading it before Switched is called, so that the datagrams
// sent from then on reach the added one.
func (in *Instance) Apply(ctx context.Context, ch Change) ([]*Listener, error) {
	in.mu.Lock()
	added, gone, err := in.prepare(ctx, ch)
	if err == nil {
		in.listeners = slices.DeleteFunc(in.listeners, func(l *Listener) bool { return slices.Contains(gone, l) })
		in.listeners = append(in.listeners, added...)
		for name, mbps := range ch.Bandwidth {
			l, _ := in.find(name)
			l.setBandwidth(mbps)
		}
	}
	in.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, l := range gone {
		if l.takenOver(added) {
			l.handOver()
		}
	}
	if ch.Switched != nil {
		ch.Switched(added)
	}
	// A removed listener whose socket an added one took over retires:
	// its clients' next requests find the successor.
	stop := func(l *Listener, ctx context.Context) error {
		if l.takenOver(added) {
			return l.Retire(ctx)
		}
		return l.Stop(ctx)
	}
	return added, stopAll(ctx, gone, stop, true)
}

// prepare does every step of Apply that can fail, with in.mu held: it
// returns the added listeners, started unless stopped, and the listeners
// to remove, or an error having undone its steps and closed every socket
// handed in ch.Add.
func (in *Instance) prepare(ctx context.Context, ch Change) (added, gone []*Listener, err error) {
	var started []*Listener
	defer func() {
		if err == nil {
			return
		}
		for _, l := range started {
			l.Stop(ctx)
		}
		for _, l := range added {
			l.release()
		}
		for _, cfg := range ch.Add {
			if cfg.Listener != nil {
				cfg.Listener.Close()
			}
			if cfg.PacketConn != nil {
				cfg.PacketConn.Close()
			}
		}
	}()
	for _, name := range ch.Remove {
		l, ok := in.find(name)
		if !ok {
			return nil, nil, fmt.Errorf("listener: no listener %q", name)
		}
		gone = append(gone, l)
	}
	kept := slices.DeleteFunc(slices.Clone(in.listeners), func(l *Listener) bool { return slices.Contains(gone, l) })
	total := 0
	for _, o := range kept {
		mbps, set := ch.Bandwidth[o.cfg.Name]
		if !set {
			mbps = o.Bandwidth()
		}
		total += mbps
	}
	for name, mbps := range ch.Bandwidth {
		if !slices.ContainsFunc(kept, func(l *Listener) bool { return l.cfg.Name == name }) {
			return nil, nil, configErr("Bandwidth", name, "no such listener kept")
		}
		if err := checkBandwidth(mbps); err != nil {
			return nil, nil, err
		}
	}
	for i, cfg := range ch.Add {
		l, err := in.build(cfg, append(kept, added...))
		if err != nil {
			return added, gone, &AddError{Index: i, Name: cmp.Or(cfg.Name, string(cfg.Protocol)+"_"+strconv.Itoa(cfg.Port)), Err: err}
		}
		added = append(added, l)
		total += l.cfg.Bandwidth
	}
	for i, l := range added {
		if err := in.overCap(l.cfg.Bandwidth, total); err != nil {
			return added, gone, &AddError{Index: i, Name: l.cfg.Name, Err: err}
		}
	}
	for name, mbps := range ch.Bandwidth {
		if err := in.overCap(mbps, total); err != nil {
			return added, gone, fmt.Errorf("%w (listener %q)", err, name)
		}
	}
	// Bind every port before starting any listener, so a port taken
	// refuses the change before anything serves.
	for i, l := range added {
		if l.cfg.Stopped || !l.pending.empty() {
			continue
		}
		if l.pending, err = bind(l.cfg, gone); err != nil {
			return added, gone, &AddError{Index: i, Name: l.cfg.Name, Err: err}
		}
	}
	for i, l := range added {
		if l.cfg.Stopped {
			continue
		}
		if err := l.Start(); err != nil {
			return added, gone, &AddError{Index: i, Name: l.cfg.Name, Err: err}
		}
		started = append(started, l)
	}
	return added, gone, nil
}

// build validates cfg and makes its listener, stopped, holding the
// socket cfg hands it; others are the listeners it will live beside.
func (in *Instance) build(cfg Config, others []*Listener) (*Listener, error) {
	named := cfg.Name != ""
	cfg, err := cfg.effective()
	if err != nil {
		return nil, err
	}
	if !named && cfg.Port == 0 {
		// Ephemeral listeners share the port 0 of their default name.
		base := cfg.Name
		for i := 2; slices.ContainsFunc(others, func(l *Listener) bool { return l.cfg.Name == cfg.Name }); i++ {
			cfg.Name = base + "." + strconv.Itoa(i)
		}
	}
	for _, o := range others {
		if o.cfg.Name == cfg.Name {
			return nil, fmt.Errorf("listener: Name %q: %w", cfg.Name, ErrExists)
		}
		if clash(o, cfg) {
			return nil, fmt.Errorf("listener: Port %d: used by listener %q: %w", cfg.Port, o.cfg.Name, ErrExists)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = in.cfg.Logger
	}
	cfg.Logger = cfg.Logger.With("listener", cfg.Name)
	l := &Listener{cfg: cfg, inst: in}
	l.port.Store(int32(cfg.Port))
	l.acl.p.Store(cfg.ACL)
	if l.aff, err = newAffinity(cfg); err != nil {
		return nil, err
	}
	l.own = newLimits(cfg.Bandwidth)
	if l.own != nil {
		l.lim.p.Store(l.own)
	} else {
		l.lim.p.Store(in.limits)
	}
	// The listener holds the handed socket until it first starts; its
	// Config does not, so a restart binds anew.
	l.pending, _, _, _ = cfg.handed()
	l.cfg.Listener, l.cfg.PacketConn = nil, nil
	return l, nil
}

// clash reports whether listener o and a new listener b would share a
// port: TCP, HTTP and HTTPS share the TCP port space; UDP, and HTTPS
// with HTTP/3, the UDP one. Port 0 clashes with nothing: the system
// gives each its own port.
func clash(o *Listener, b Config) bool {
	oPort, oEnd := o.Port(), o.cfg.EndPort
	tcp := o.cfg.Protocol != UDP && b.Protocol != UDP
	udp := o.cfg.servesUDP() && b.servesUDP()
	if !tcp && !udp || oPort == 0 || b.Port == 0 {
		return false
	}
	return oPort <= max(b.Port, b.EndPort) && b.Port <= max(oPort, oEnd)
}

// checkBandwidth refuses mbps as l's cap if the listeners' caps would
// then sum beyond the instance's.
func (in *Instance) checkBandwidth(l *Listener, mbps int) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	total := mbps
	for _, o := range in.listeners {
		if o != l {
			total += o.Bandwidth()
		}
	}
	return in.overCap(mbps, total)
}

// overCap refuses mbps, a listener's new cap, when the listeners' caps
// total more than the instance's once it is set. A listener going
// uncapped is never refused.
func (in *Instance) overCap(mbps, total int) error {
	if in.cfg.Bandwidth == 0 || mbps == 0 || total <= in.cfg.Bandwidth {
		return nil
	}
	return configErr("Bandwidth", mbps, fmt.Sprintf("listeners would total %d Mbps, over the instance's %d", total, in.cfg.Bandwidth))
}

// Listener returns the listener called name.
func (in *Instance) Listener(name string) (*Listener, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.find(name)
}

// find returns the listener called name. The caller holds in.mu.
func (in *Instance) find(name string) (*Listener, bool) {
	i := slices.IndexFunc(in.listeners, func(l *Listener) bool { return l.cfg.Name == name })
	if i < 0 {
		return nil, false
	}
	return in.listeners[i], true
}

// Listeners returns the instance's listeners in the order they were added.
func (in *Instance) Listeners() []*Listener {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.listeners)
}

// takenOver reports whether a started listener of added serves one of
// l's sockets: the one it took over (claim).
func (l *Listener) takenOver(added []*Listener) bool {
	for _, a := range added {
		if a.cfg.Stopped {
			continue
		}
		for _, port := range a.cfg.ports() {
			if _, ok := l.socketOn(a.cfg, port); ok {
				return true
			}
		}
	}
	return false
}

// Remove removes the listener called name and stops it (see
// Listener.Stop). It is Apply with one listener to remove.
func (in *Instance) Remove(ctx context.Context, name string) error {
	_, err := in.Apply(ctx, Change{Remove: []string{name}})
	return err
}

// Start starts every stopped listener. It starts as many as it can and
// returns the errors of those it could not (a port taken, say).
func (in *Instance) Start() error {
	var errs []error
	for _, l := range in.Listeners() {
		if err := l.Start(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.cfg.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Stop stops every listener gracefully, in parallel, under one deadline:
// each stops accepting at once and its connections get until ctx is done.
// It is for when nothing will serve the listeners' clients after; see
// Retire (and Listener.Stop).
func (in *Instance) Stop(ctx context.Context) error {
	return stopAll(ctx, in.Listeners(), (*Listener).Stop, false)
}

// Retire is Stop for when the listeners' sockets live on in a successor
// process (a binary upgrade): each listener retires (Listener.Retire),
// in parallel, under one deadline; HTTP and HTTPS listeners close their
// keep-alive connections only after a response saying so.
func (in *Instance) Retire(ctx context.Context) error {
	return stopAll(ctx, in.Listeners(), (*Listener).Retire, false)
}

// stopAll stops ls in parallel under ctx with stop (Listener.Stop or
// Retire); removed, they also close the sockets of those never started.
func stopAll(ctx context.Context, ls []*Listener, stop func(*Listener, context.Context) error, removed bool) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, l := range ls {
		wg.Go(func() {
			if removed {
				defer l.release()
			}
			if err := stop(l, ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", l.cfg.Name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
