package listener

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/session"
)

// groupWatcher is implemented by servers that act on group changes (TCP
// connection drain).
type groupWatcher interface {
	groupChanged()
}

// watcher runs while a listener runs: it follows the group's changes
// (health targets, the server's drain), and sweeps the persistence table.
type watcher struct {
	l    *Listener
	stop chan struct{}
	done chan struct{}
}

// startWatch starts the health checker, if configured, and the watcher
// goroutine for srv. Called with l.mu held.
func (l *Listener) startWatch(srv server) error {
	if l.cfg.HealthCheck != nil {
		hc, err := l.newChecker()
		if err != nil {
			return err
		}
		if err := hc.Start(); err != nil {
			hc.Stop()
			return err
		}
		l.hc.Store(hc)
	}
	w := &watcher{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	l.watch = w
	go w.run(srv)
	return nil
}

// stopWatch stops the watcher and the health checker. Called with l.mu
// held.
func (l *Listener) stopWatch() {
	if w := l.watch; w != nil {
		close(w.stop)
		<-w.done
		l.watch = nil
	}
	if hc := l.hc.Swap(nil); hc != nil {
		hc.Stop()
	}
}

func (w *watcher) run(srv server) {
	defer close(w.done)
	l := w.l
	var sweep <-chan time.Time
	if l.aff != nil {
		t := time.NewTicker(l.cfg.PersistenceTimeout)
		defer t.Stop()
		sweep = t.C
	}
	gw, _ := srv.(groupWatcher)
	for {
		changed := l.cfg.Group.Changed()
		if hc := l.hc.Load(); hc != nil {
			if err := hc.SetTargets(l.targets()); err != nil {
				l.cfg.Logger.Warn("updating health targets failed", "err", err)
			}
		}
		if gw != nil {
			gw.groupChanged()
		}
		select {
		case <-changed:
		case <-sweep:
			l.aff.Sweep()
		case <-w.stop:
			return
		}
	}
}

// newChecker builds the listener's health checker from its config.
func (l *Listener) newChecker() (*health.Checker, error) {
	cfg := *l.cfg.HealthCheck
	if cfg.Setter == nil {
		cfg.Setter = l.cfg.Group
	}
	if cfg.OnChange == nil {
		log := l.cfg.Logger
		cfg.OnChange = func(ev health.Event) {
			log.Info("backend health changed", "backend", ev.ID, "healthy", ev.Healthy, "reason", ev.Reason)
		}
	}
	return health.New(cfg, l.targets()...)
}

// targets lists the group's members as health targets, at the address
// traffic goes to (a port-range listener's first port).
func (l *Listener) targets() []health.Target {
	ms := l.cfg.Group.Members()
	ts := make([]health.Target, len(ms))
	for i, m := range ms {
		addr := m.Addr()
		if l.cfg.EndPort != 0 {
			addr = withPort(addr, l.cfg.Port)
		}
		ts[i] = health.Target{ID: m.ID(), Addr: addr}
	}
	return ts
}

// reportConnect feeds passive health checking with the outcome of a
// backend connection attempt.
func (l *Listener) reportConnect(id string, err error) {
	hc := l.hc.Load()
	if hc == nil {
		return
	}
	if err != nil {
		hc.ReportFailure(id)
	} else {
		hc.ReportSuccess(id)
	}
}

// pickFirst makes the first pick for a client: its persisted backend if it
// has one that may still take it, else the scheduler's choice.
func (l *Listener) pickFirst(k balancer.Key) (*balancer.Member, error) {
	if l.aff != nil {
		if id, ok := l.aff.Lookup(k.Src.Addr()); ok {
			return l.cfg.Group.PickSticky(id, k)
		}
	}
	return l.cfg.Group.Pick(k)
}

// persist records that src now goes to id.
func (l *Listener) persist(src netip.Addr, id string) {
	if l.aff != nil {
		l.aff.Set(src, id)
	}
}

// newAffinity returns the persistence table for cfg, or nil when
// persistence is off.
func newAffinity(cfg Config) (*session.Affinity, error) {
	if cfg.PersistenceTimeout == 0 {
		return nil, nil
	}
	return session.NewAffinity(session.AffinityConfig{PersistenceTimeout: cfg.PersistenceTimeout})
}

// hcRef holds the running health checker, if any.
type hcRef = atomic.Pointer[health.Checker]
