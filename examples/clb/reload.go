package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/listener"
	"github.com/lbkit/lbkit/sni"
)

// app is the running load balancer: one instance and the plan it runs.
type app struct {
	env     *env
	refused atomic.Uint64 // configurations reloads refused (see refuse)
	log     *slog.Logger
	inst    *listener.Instance
	plan    *plan
	running map[string]*running // by listener name
	acls    map[string]*acl.Group
	// replaceTimeout bounds the graceful stop of a listener a reload
	// replaces.
	replaceTimeout time.Duration
	// sources lists the running DNS sources for the admin server, which
	// reads it while reloads change running; each reload publishes it.
	sources atomic.Pointer[[]namedSource]
	// applied is the configuration applied last, for the admin server.
	applied atomic.Pointer[appliedConfig]
}

// running is one live listener and the rule groups it owns.
type running struct {
	spec  *lspec
	l     *listener.Listener
	rules []*balancer.Group
	src   sources // of the groups DNS feeds
}

// start creates the instance and starts every listener of p, by the
// path reloads take. A listener that cannot bind (a port taken) stops the
// start, naming it.
func start(p *plan, e *env) (*app, error) {
	inst, err := listener.NewInstance(p.inst)
	if err != nil {
		return nil, err
	}
	a := &app{env: e, log: e.log, inst: inst, plan: &plan{inst: p.inst}, running: map[string]*running{}, acls: map[string]*acl.Group{}, replaceTimeout: 5 * time.Second}
	if err := a.reload(p); err != nil {
		a.inst.Stop(context.Background())
		return nil, err
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

// udpGrace bounds the stop of UDP listeners: a UDP flow has no end of
// its own but its idle timeout, so waiting for flows to finish would hold
// every stop for the whole drain time.
const udpGrace = 2 * time.Second

// refuse counts a configuration a reload refused, if err says so, and
// returns err.
func (a *app) refuse(err error) error {
	if err != nil {
		a.refused.Add(1)
	}
	return err
}

// stop drains every listener until ctx ends (UDP listeners for at most
// udpGrace).
func (a *app) stop(ctx context.Context) error { return a.halt(ctx, false) }

// retire is stop for when a successor process serves the sockets (see
// listener.Listener.Retire): HTTP and HTTPS listeners end their
// keep-alive connections on a response that says so rather than closing
// them idle, UDP listeners stop reading at once.
func (a *app) retire(ctx context.Context) error { return a.halt(ctx, true) }

// halt stops the UDP listeners within udpGrace, the discovery sources,
// then every listener; retire as Instance.Retire does.
func (a *app) halt(ctx context.Context, retire bool) error {
	var wg sync.WaitGroup
	for _, l := range a.inst.Listeners() {
		if l.Protocol() == listener.UDP {
			wg.Go(func() {
				uctx, cancel := context.WithTimeout(ctx, udpGrace)
				defer cancel()
				if retire {
					l.Retire(uctx)
				} else {
					l.Stop(uctx)
				}
			})
		}
	}
	wg.Wait()
	for _, r := range a.running {
		r.src.close()
	}
	if retire {
		return a.inst.Retire(ctx)
	}
	return a.inst.Stop(ctx)
}

// reload applies a new, already checked plan, all or nothing, in two
// steps. Prepare: every change that can fail is found out first —
// listeners whose protocol, port, host or any field that cannot change
// live differ are replaced, the others' live updates (backends, weights,
// scheduler, ACL entries, bandwidth, certificates, TLS policy) are made
// on scratch copies, and the library binds every new port (a replaced
// listener takes over the old one's socket) and starts the new
// listeners. Switch: only then do the new listeners serve, the kept ones
// take their updates and the ACL groups their entries, while removed and
// replaced listeners drain gracefully. On any failure nothing changes,
// and the error names the listener and the cause. SIGHUP and the start
// take this one path.
func (a *app) reload(p *plan) error {
	old := a.plan.inst
	if p.inst.ID != old.ID || p.inst.Address != old.Address || p.inst.Bandwidth != old.Bandwidth {
		return errors.New("LoadBalancerId, Address and Bandwidth of the instance change only with a restart")
	}
	acls, err := a.nextACLs(p)
	if err != nil {
		return err
	}
	ch := listener.Change{Bandwidth: map[string]int{}}
	want := map[string]*lspec{}
	for _, s := range p.listeners {
		want[s.name] = s
	}
	for name, r := range a.running {
		if s, keep := want[name]; !keep || !sameLive(r, s) || !sameFleet(a.plan.file, p.file, s.src) {
			ch.Remove = append(ch.Remove, name)
		}
	}
	slices.Sort(ch.Remove)
	var adds []*lspec
	kept := map[*running]*lspec{}
	for _, s := range p.listeners {
		r, ok := a.running[s.name]
		if !ok || slices.Contains(ch.Remove, s.name) {
			adds = append(adds, s)
			ch.Add = append(ch.Add, s.config(acls))
			continue
		}
		if err := r.fit(s); err != nil {
			return fmt.Errorf("%s: %w", s.label(), err)
		}
		if r.l.Bandwidth() != s.cfg.Bandwidth {
			ch.Bandwidth[s.name] = s.cfg.Bandwidth
		}
		kept[r] = s
	}
	// The groups of new listeners that DNS feeds get their sources, and
	// their members from a first lookup, before the listeners serve.
	srcs := make([]sources, len(adds))
	for i, s := range adds {
		srcs[i] = a.startSources(s)
	}
	closeSources := func() {
		for i := range srcs {
			srcs[i].close()
		}
	}
	var errs []error // of the switch; fit makes them impossible
	ch.Switched = func(added []*listener.Listener) {
		for _, name := range ch.Remove {
			a.running[name].src.close()
			delete(a.running, name)
			a.log.Info("reload: removing listener", "listener", name)
		}
		for i, l := range added {
			r := newRunning(adds[i], l)
			r.src = srcs[i]
			a.running[l.Name()] = r
			a.log.Info("reload: listener added", "listener", l.Name())
		}
		a.env.qh.switched()
		for r, s := range kept {
			err := a.syncGroups(r, s)
			if err == nil {
				err = r.update(s, acls)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.label(), err))
				continue
			}
			a.log.Info("reload: listener updated live", "listener", s.name, "backends", r.l.Group().String())
		}
		for id, g := range p.acls {
			if cur := acls[id]; cur != g {
				errs = append(errs, cur.Replace(g.Entries()...))
			}
		}
		a.acls, a.plan = acls, p
		a.applied.Store(&appliedConfig{version: p.version, at: time.Now()})
		a.publishSources()
	}
	// A process started by an upgrade serves the sockets its predecessor
	// handed over, its members as healthy as that one saw them (until it
	// is ready; later changes bind and start as usual).
	if err := a.env.upg.hand(ch.Add); err != nil {
		closeSources()
		return err
	}
	a.env.upg.seedHealth(adds)
	ctx, cancel := context.WithTimeout(context.Background(), a.replaceTimeout)
	defer cancel()
	added, err := a.inst.Apply(ctx, ch)
	if added == nil && err != nil {
		closeSources()
		if ae, ok := errors.AsType[*listener.AddError](err); ok {
			return fmt.Errorf("%s: %w", adds[ae.Index].label(), ae.Err)
		}
		return err
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", errPartial, err)
	}
	return nil
}

// errPartial marks a reload error from the switch, after which the new
// configuration is in place but for what the error names. Preparing
// makes it impossible but for a removed listener's failed stop; any
// other reload error means nothing changed.
var errPartial = errors.New("reload applied but")

// nextACLs returns the ACL groups of p as the app will hold them: a
// group kept in the same family stays the app's own (its entries change
// in place at the switch, so the policies bound to it follow), checked
// now with the new entries; others are p's.
func (a *app) nextACLs(p *plan) (map[string]*acl.Group, error) {
	next := maps.Clone(p.acls)
	for id, g := range p.acls {
		cur, ok := a.acls[id]
		if !ok || cur.Family() != g.Family() {
			continue
		}
		if _, err := acl.NewGroup(acl.GroupConfig{Name: cur.Name(), Family: cur.Family()}, g.Entries()...); err != nil {
			return nil, fmt.Errorf("AccessControlLists %s: %w", id, err)
		}
		next[id] = cur
	}
	return next, nil
}

// label names a planned listener in errors.
func (s *lspec) label() string {
	return fmt.Sprintf("listener %s (%s port %d)", s.name, s.src.ListenerProtocol, s.src.ListenerPort)
}

// config is the listener configuration of s, started, its ACL policy
// bound to the app's group acls holds.
func (s *lspec) config(acls map[string]*acl.Group) listener.Config {
	cfg := s.cfg
	cfg.Stopped = false
	cfg.ACL = s.policy(acls)
	return cfg
}

// policy is s's ACL policy on the group acls holds, or nil.
func (s *lspec) policy(acls map[string]*acl.Group) *acl.Policy {
	pol := s.cfg.ACL
	if pol == nil || s.src.AclId == "" {
		return pol
	}
	// Bind to the app's group, which reloads update in place.
	pol, _ = acl.NewPolicy(acl.PolicyConfig{Group: acls[s.src.AclId], Mode: pol.Mode(), Family: pol.Group().Family()})
	return pol
}

func newRunning(s *lspec, l *listener.Listener) *running {
	r := &running{spec: s, l: l}
	for _, rule := range s.cfg.HTTP.Rules {
		r.rules = append(r.rules, rule.Group)
	}
	return r
}

// groups returns the running listener's groups: its own, then its
// forwarding rules'.
func (r *running) groups() []*balancer.Group {
	return append([]*balancer.Group{r.l.Group()}, r.rules...)
}

// sameLive reports whether the running r can take s live: the same
// hard fields, host and rule count.
func sameLive(r *running, s *lspec) bool {
	return sameHard(r.spec.src, s.src) && r.spec.cfg.Host == s.cfg.Host && len(r.rules) == len(s.rules)
}

// fit checks, changing nothing, that update(s) cannot fail: it makes
// update's calls on scratch copies of what update changes. (The ACL
// policy and the TLS settings fail only on a family or protocol the plan
// already checked; the bandwidth is the instance's to check, in Apply.)
func (r *running) fit(s *lspec) error {
	cur, err := balancer.ParseScheduler(r.spec.sched) // the groups' scheduler until update
	if err != nil {
		return err
	}
	for _, members := range append([][]balancer.Backend{s.main}, s.rules...) {
		g, err := balancer.New(balancer.Config{Scheduler: cur}, members...)
		if err == nil {
			err = r.setScheduler(g, s)
		}
		if err != nil {
			return err
		}
	}
	if s.cfg.Protocol == listener.HTTPS {
		sel, err := sni.NewSelector(sni.SelectorConfig{})
		if err == nil {
			err = setCertificates(sel, s.cfg.HTTP)
		}
		return err
	}
	return nil
}

// setScheduler switches g to s's scheduler if it changed.
func (r *running) setScheduler(g *balancer.Group, s *lspec) error {
	if s.sched == r.spec.sched {
		return nil
	}
	sch, err := balancer.ParseScheduler(s.sched)
	if err != nil {
		return err
	}
	return g.SetScheduler(sch)
}

// update applies the live-changeable fields of s to the running listener,
// but its members, which the app's syncGroups brings first, and its
// bandwidth, which Apply sets.
func (r *running) update(s *lspec, acls map[string]*acl.Group) error {
	l := r.l
	for _, g := range append([]*balancer.Group{l.Group()}, r.rules...) {
		if err := r.setScheduler(g, s); err != nil {
			return err
		}
	}
	if err := l.SetACL(s.policy(acls)); err != nil {
		return err
	}
	if s.cfg.Protocol == listener.HTTPS {
		h := s.cfg.HTTP
		if err := l.SetTLSPolicy(h.TLSPolicy); err != nil {
			return err
		}
		if err := l.SetClientCAs(h.ClientCAs); err != nil {
			return err
		}
		if err := setCertificates(l.Certificates(), h); err != nil {
			return err
		}
	}
	if err := updateFleet(r, s); err != nil {
		return err
	}
	r.spec = s
	return nil
}

// setCertificates gives sel h's default certificate and domains, the
// domains in one step.
func setCertificates(sel *sni.Selector, h listener.HTTPOptions) error {
	if err := sel.SetDefault(h.Certificate); err != nil {
		return err
	}
	return sel.Update(func(b *sni.Batch[*tls.Certificate]) error {
		b.Clear()
		for _, d := range slices.Sorted(maps.Keys(h.Domains)) {
			if err := b.Set(d, h.Domains[d]); err != nil {
				return err
			}
		}
		return nil
	})
}
