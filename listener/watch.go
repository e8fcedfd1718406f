package listener

import (
	"context"
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

// watcher runs while a listener runs: it follows the default group's
// changes for the server (TCP connection drain, the HTTP pool), and sweeps
// the persistence table. Health checkers follow their groups themselves.
type watcher struct {
	l    *Listener
	stop chan struct{}
	done chan struct{}
}

// startCheckers starts the health checkers, if configured: one per group,
// following it. They start before the server so that no connection
// reaches a member before the group knows a checker decides its health.
// Called with l.mu held.
func (l *Listener) startCheckers() error {
	if l.cfg.HealthCheck == nil {
		return nil
	}
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
	return nil
}

// startWatch starts the watcher goroutine for srv. Called with l.mu held.
func (l *Listener) startWatch(srv server) {
	w := &watcher{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	l.watch = w
	go w.run(srv)
}

// stopWatch stops the watcher and the health checkers. Called with l.mu
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

// WaitProbed waits until the listener's health checkers have probed every
// member of its groups once and told the groups the results, so that the
// members that passed take traffic: at most one HealthCheck.Interval plus
// HealthCheck.Timeout after Start. It returns nil then, or at once for a
// listener without HealthCheck or not running, and ctx's error if ctx
// ends first. A service reports itself ready after it.
func (l *Listener) WaitProbed(ctx context.Context) error {
	set := l.hc.Load()
	if set == nil {
		return nil
	}
	for _, hc := range *set {
		select {
		case <-hc.Probed():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// groups returns every server group the listener sends traffic to: its
// own, then an HTTP listener's rule groups.
func (l *Listener) groups() []*balancer.Group {
	if st := l.cfg.HTTP.st; st != nil && (l.cfg.Protocol == HTTP || l.cfg.Protocol == HTTPS) {
		return st.proxy.Groups()
	}
	return []*balancer.Group{l.cfg.Group}
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

func (l *Listener) checker(g *balancer.Group) *health.Checker {
	if set := l.hc.Load(); set != nil {
		return (*set)[g]
	}
	return nil
}

// newChecker builds the health checker following group g from the
// listener's config. A port-range listener probes its first port, where
// its traffic goes.
func (l *Listener) newChecker(g *balancer.Group) (*health.Checker, error) {
	cfg := *l.cfg.HealthCheck
	if l.cfg.EndPort != 0 && cfg.Port == 0 {
		cfg.Port = l.cfg.Port
	}
	if cfg.OnChange == nil {
		log := l.cfg.Logger
		cfg.OnChange = func(ev health.Event) {
			log.Info("backend health changed", "backend", ev.ID, "healthy", ev.Healthy, "reason", ev.Reason)
		}
	}
	return health.Follow(g, cfg)
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
