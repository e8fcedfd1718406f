package listener

import (
	"sync"
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

// startWatch starts the health checkers, if configured, and the watcher
// goroutines for srv. Called with l.mu held.
func (l *Listener) startWatch(srv server) error {
	if l.cfg.HealthCheck != nil {
		set := checkers{}
		for _, g := range l.groups() {
			hc, err := l.newChecker(g)
			if err == nil {
				if err = hc.Start(); err != nil {
					hc.Stop()
				}
			}
			if err != nil {
				set.stop()
				return err
			}
			set[g] = hc
		}
		l.hc.Store(&set)
	}
	w := &watcher{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	l.watch = w
	go w.run(srv)
	return nil
}

// stopWatch stops the watchers and the health checkers. Called with l.mu
// held.
func (l *Listener) stopWatch() {
	if w := l.watch; w != nil {
		close(w.stop)
		<-w.done
		l.watch = nil
	}
	if set := l.hc.Swap(nil); set != nil {
		set.stop()
	}
}

// checkers are a listener's running health checkers, one per server
// group (an HTTP listener's rules may name several). Immutable once
// stored.
type checkers map[*balancer.Group]*health.Checker

func (set checkers) stop() {
	for _, hc := range set {
		hc.Stop()
	}
}

// groups returns every server group the listener sends traffic to: its
// own, then an HTTP listener's rule groups.
func (l *Listener) groups() []*balancer.Group {
	if st := l.cfg.HTTP.st; st != nil && (l.cfg.Protocol == HTTP || l.cfg.Protocol == HTTPS) {
		return st.routes.groups
	}
	return []*balancer.Group{l.cfg.Group}
}

func (w *watcher) run(srv server) {
	defer close(w.done)
	l := w.l
	var followers sync.WaitGroup
	defer followers.Wait()
	if set := l.hc.Load(); set != nil {
		for g := range *set {
			if g != l.cfg.Group {
				followers.Go(func() { w.follow(g) })
			}
		}
	}
	var sweep <-chan time.Time
	if l.aff != nil {
		t := time.NewTicker(l.cfg.PersistenceTimeout)
		defer t.Stop()
		sweep = t.C
	}
	gw, _ := srv.(groupWatcher)
	for {
		changed := l.cfg.Group.Changed()
		l.updateTargets(l.cfg.Group)
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

// follow keeps the health targets of rule group g in step with it.
func (w *watcher) follow(g *balancer.Group) {
	for {
		changed := g.Changed()
		w.l.updateTargets(g)
		select {
		case <-changed:
		case <-w.stop:
			return
		}
	}
}

// updateTargets hands g's current members to its health checker.
func (l *Listener) updateTargets(g *balancer.Group) {
	if hc := l.checker(g); hc != nil {
		if err := hc.SetTargets(l.targets(g)); err != nil {
			l.cfg.Logger.Warn("updating health targets failed", "err", err)
		}
	}
}

func (l *Listener) checker(g *balancer.Group) *health.Checker {
	if set := l.hc.Load(); set != nil {
		return (*set)[g]
	}
	return nil
}

// newChecker builds the health checker of group g from the listener's
// config. Unless the config names its own Setter, results go to g.
func (l *Listener) newChecker(g *balancer.Group) (*health.Checker, error) {
	cfg := *l.cfg.HealthCheck
	if cfg.Setter == nil {
		cfg.Setter = g
	}
	if cfg.OnChange == nil {
		log := l.cfg.Logger
		cfg.OnChange = func(ev health.Event) {
			log.Info("backend health changed", "backend", ev.ID, "healthy", ev.Healthy, "reason", ev.Reason)
		}
	}
	return health.New(cfg, l.targets(g)...)
}

// targets lists g's members as health targets, at the address traffic
// goes to (a port-range listener's first port).
func (l *Listener) targets(g *balancer.Group) []health.Target {
	ms := g.Members()
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

// newAffinity returns the persistence table for cfg, or nil when
// persistence is off.
func newAffinity(cfg Config) (*session.Affinity, error) {
	if cfg.PersistenceTimeout == 0 {
		return nil, nil
	}
	return session.NewAffinity(session.AffinityConfig{PersistenceTimeout: cfg.PersistenceTimeout})
}

// hcRef holds the running health checkers, if any.
type hcRef = atomic.Pointer[checkers]
