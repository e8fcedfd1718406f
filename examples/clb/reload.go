package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
)

// app is the running load balancer: one instance and the plan it runs.
type app struct {
	env     *env
	log     *slog.Logger
	inst    *listener.Instance
	plan    *plan
	running map[string]*running // by listener name
	acls    map[string]*acl.Group
	// replaceTimeout bounds the graceful stop of a listener a reload
	// replaces.
	replaceTimeout time.Duration
}

// running is one live listener and the rule groups it owns.
type running struct {
	spec  *lspec
	l     *listener.Listener
	rules []*balancer.Group
	src   sources // of the groups DNS feeds
}

// start creates the instance and starts every listener of p. A listener
// that cannot bind (a port taken) stops the start, naming it.
func start(p *plan, e *env) (*app, error) {
	inst, err := listener.NewInstance(p.inst)
	if err != nil {
		return nil, err
	}
	a := &app{env: e, log: e.log, inst: inst, plan: p, running: map[string]*running{}, acls: p.acls, replaceTimeout: 5 * time.Second}
	for _, s := range p.listeners {
		if err := a.add(s); err != nil {
			a.inst.Stop(context.Background())
			return nil, err
		}
	}
	return a, nil
}

// waitProbed waits until every listener's health checks have probed each
// backend once, so that "ready" means the backends that passed take
// traffic (a backend gets none before its first passed probe). The wait
// is bounded by the time a first round takes, the longest health-check
// interval plus timeout of the listeners; past it, clb logs and goes on.
func (a *app) waitProbed() {
	var bound time.Duration
	for _, r := range a.running {
		if hc := r.spec.cfg.HealthCheck; hc != nil {
			bound = max(bound, hc.Interval+hc.Timeout)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound+time.Second)
	defer cancel()
	for _, r := range a.running {
		if err := r.l.WaitProbed(ctx); err != nil {
			a.log.Warn("health checks: first round not finished; ready anyway", "listener", r.l.Name(), "waited", bound+time.Second)
			return
		}
	}
}

// add adds and starts the listener s.
func (a *app) add(s *lspec) error {
	cfg := s.cfg
	cfg.Stopped = true
	if s.src.AclId != "" && cfg.ACL != nil {
		// Bind to the app's group, which reloads update in place.
		cfg.ACL, _ = acl.NewPolicy(acl.PolicyConfig{Group: a.acls[s.src.AclId], Mode: cfg.ACL.Mode(), Family: cfg.ACL.Group().Family()})
	}
	l, err := a.inst.Add(cfg)
	if err != nil {
		return fmt.Errorf("listener %s (%s port %d): %w", s.name, s.src.ListenerProtocol, s.src.ListenerPort, err)
	}
	r := &running{spec: s, l: l}
	for _, rule := range cfg.HTTP.Rules {
		r.rules = append(r.rules, rule.Group)
	}
	err = a.startSources(r)
	if err == nil {
		if err = l.Start(); err != nil {
			r.src.close()
		}
	}
	if err != nil {
		a.inst.Remove(context.Background(), l.Name())
		return fmt.Errorf("listener %s (%s port %d): %w", s.name, s.src.ListenerProtocol, s.src.ListenerPort, err)
	}
	a.running[s.name] = r
	return nil
}

// udpGrace bounds the stop of UDP listeners: a UDP flow has no end of
// its own but its idle timeout, so waiting for flows to finish would hold
// every stop for the whole drain time.
const udpGrace = 2 * time.Second

// stop drains every listener until ctx ends (UDP listeners for at most
// udpGrace).
func (a *app) stop(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, l := range a.inst.Listeners() {
		if l.Protocol() == listener.UDP {
			wg.Go(func() {
				uctx, cancel := context.WithTimeout(ctx, udpGrace)
				defer cancel()
				l.Stop(uctx)
			})
		}
	}
	wg.Wait()
	for _, r := range a.running {
		r.src.close()
	}
	return a.inst.Stop(ctx)
}

// reload applies a new, already checked plan. Listeners whose protocol,
// port or any field that cannot change live differ are replaced (stopped
// gracefully, then added); the others keep their connections and take
// the new backends, weights, scheduler, ACL, bandwidth, certificates and
// TLS policy live. Listeners no longer configured are removed.
func (a *app) reload(p *plan) error {
	old := a.plan.inst
	if p.inst.ID != old.ID || p.inst.Address != old.Address || p.inst.Bandwidth != old.Bandwidth {
		return errors.New("LoadBalancerId, Address and Bandwidth of the instance change only with a restart")
	}
	// ACLs: update kept groups in place; new ones are taken as built.
	for id, g := range p.acls {
		if cur, ok := a.acls[id]; ok && cur.Family() == g.Family() {
			if err := cur.Replace(g.Entries()...); err != nil {
				return err
			}
			p.acls[id] = cur
		}
	}
	a.acls = p.acls

	want := map[string]*lspec{}
	for _, s := range p.listeners {
		want[s.name] = s
	}
	var errs []error
	// Removed and replaced listeners go first, so their ports are free.
	for name, r := range a.running {
		s, keep := want[name]
		if keep && sameHard(r.spec.src, s.src) && len(r.rules) == len(s.rules) && sameFleet(a.plan.file, p.file, s.src) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.replaceTimeout)
		err := a.inst.Remove(ctx, name)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
		r.src.close()
		delete(a.running, name)
		if keep {
			a.log.Info("reload: replacing listener", "listener", name)
		} else {
			a.log.Info("reload: removing listener", "listener", name)
		}
	}
	for _, s := range p.listeners {
		r, ok := a.running[s.name]
		if !ok {
			if err := a.add(s); err != nil {
				errs = append(errs, err)
			} else {
				a.log.Info("reload: listener added", "listener", s.name)
			}
			continue
		}
		if err := a.update(r, s); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", s.name, err))
		}
	}
	a.plan = p
	return errors.Join(errs...)
}

// update applies the live-changeable fields of s to the running listener.
func (a *app) update(r *running, s *lspec) error {
	l := r.l
	if err := a.syncGroups(r, s); err != nil {
		return err
	}
	if s.sched != r.spec.sched {
		sch, err := balancer.ParseScheduler(s.sched)
		if err != nil {
			return err
		}
		if err := l.SetScheduler(sch); err != nil {
			return err
		}
		for _, g := range r.rules {
			sch, _ := balancer.ParseScheduler(s.sched)
			if err := g.SetScheduler(sch); err != nil {
				return err
			}
		}
	}
	pol := s.cfg.ACL
	if pol != nil {
		pol, _ = acl.NewPolicy(acl.PolicyConfig{Group: a.acls[s.src.AclId], Mode: pol.Mode(), Family: pol.Group().Family()})
	}
	if err := l.SetACL(pol); err != nil {
		return err
	}
	if l.Bandwidth() != s.cfg.Bandwidth {
		if err := l.SetBandwidth(s.cfg.Bandwidth); err != nil {
			return err
		}
	}
	if s.cfg.Protocol == listener.HTTPS {
		h := s.cfg.HTTP
		if err := l.SetTLSPolicy(h.TLSPolicy); err != nil {
			return err
		}
		if err := l.SetClientCAs(h.ClientCAs); err != nil {
			return err
		}
		sel := l.Certificates()
		if err := sel.SetDefault(h.Certificate); err != nil {
			return err
		}
		var gone []string
		for d := range sel.All() {
			if _, ok := h.Domains[d]; !ok {
				gone = append(gone, d)
			}
		}
		for _, d := range gone {
			if err := sel.Delete(d); err != nil {
				return err
			}
		}
		domains := make([]string, 0, len(h.Domains))
		for d := range h.Domains {
			domains = append(domains, d)
		}
		slices.Sort(domains)
		for _, d := range domains {
			if err := sel.Set(d, h.Domains[d]); err != nil {
				return err
			}
		}
	}
	if err := updateFleet(r, s); err != nil {
		return err
	}
	r.spec = s
	a.log.Info("reload: listener updated live", "listener", s.name, "backends", l.Group().String())
	return nil
}
