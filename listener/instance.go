package listener

import (
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
// Create one with NewInstance, add listeners with Add, and stop them all
// with Stop. An Instance is safe for concurrent use.
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
// instance as it was.
func (in *Instance) Add(cfg Config) (*Listener, error) {
	named := cfg.Name != ""
	cfg, err := cfg.effective()
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if !named && cfg.Port == 0 {
		// Ephemeral listeners share the port 0 of their default name.
		base := cfg.Name
		for i := 2; in.named(cfg.Name); i++ {
			cfg.Name = base + "." + strconv.Itoa(i)
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
	for _, o := range in.listeners {
		if o.cfg.Name == cfg.Name {
			return nil, fmt.Errorf("listener: Name %q: %w", cfg.Name, ErrExists)
		}
		if clash(o, cfg) {
			return nil, fmt.Errorf("listener: Port %d: used by listener %q: %w", cfg.Port, o.cfg.Name, ErrExists)
		}
	}
	if err := in.checkBandwidthLocked(l, cfg.Bandwidth); err != nil {
		return nil, err
	}
	l.own = newLimits(cfg.Bandwidth)
	if l.own != nil {
		l.lim.p.Store(l.own)
	} else {
		l.lim.p.Store(in.limits)
	}
	if !cfg.Stopped {
		if err := l.Start(); err != nil {
			return nil, err
		}
	}
	in.listeners = append(in.listeners, l)
	return l, nil
}

// clash reports whether listener o and a new listener b would share a
// port: TCP, HTTP and HTTPS share the TCP port space, UDP has its own.
// Port 0 clashes with nothing: the system gives each its own port.
func clash(o *Listener, b Config) bool {
	oPort, oEnd := o.Port(), o.cfg.EndPort
	if (o.cfg.Protocol == UDP) != (b.Protocol == UDP) || oPort == 0 || b.Port == 0 {
		return false
	}
	return oPort <= max(b.Port, b.EndPort) && b.Port <= max(oPort, oEnd)
}

// named reports whether a listener of the instance is called name.
func (in *Instance) named(name string) bool {
	return slices.ContainsFunc(in.listeners, func(l *Listener) bool { return l.cfg.Name == name })
}

func (in *Instance) checkBandwidth(l *Listener, mbps int) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.checkBandwidthLocked(l, mbps)
}

// checkBandwidthLocked refuses a cap that would make the listeners' caps
// sum beyond the instance's.
func (in *Instance) checkBandwidthLocked(l *Listener, mbps int) error {
	if in.cfg.Bandwidth == 0 || mbps == 0 {
		return nil
	}
	sum := mbps
	for _, o := range in.listeners {
		if o != l {
			sum += o.Bandwidth()
		}
	}
	if sum > in.cfg.Bandwidth {
		return configErr("Bandwidth", mbps, fmt.Sprintf("listeners would total %d Mbps, over the instance's %d", sum, in.cfg.Bandwidth))
	}
	return nil
}

// Listener returns the listener called name.
func (in *Instance) Listener(name string) (*Listener, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, l := range in.listeners {
		if l.cfg.Name == name {
			return l, true
		}
	}
	return nil, false
}

// Listeners returns the instance's listeners in the order they were added.
func (in *Instance) Listeners() []*Listener {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.listeners)
}

// Remove stops the listener called name (see Listener.Stop) and removes
// it.
func (in *Instance) Remove(ctx context.Context, name string) error {
	l, ok := in.Listener(name)
	if !ok {
		return fmt.Errorf("listener: no listener %q", name)
	}
	err := l.Stop(ctx)
	in.mu.Lock()
	in.listeners = slices.DeleteFunc(in.listeners, func(o *Listener) bool { return o == l })
	in.mu.Unlock()
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
func (in *Instance) Stop(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, l := range in.Listeners() {
		wg.Go(func() {
			if err := l.Stop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", l.cfg.Name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
