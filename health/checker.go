package health

import (
	"context"
	"errors"
	"iter"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// StatusSetter receives health changes. It is the one method of
// *balancer.Group that a Checker needs, defined here so that health does
// not depend on balancer (as Traefik's healthcheck.StatusSetter).
// SetHealthy is called from the Checker's goroutines, one call at a time.
type StatusSetter interface {
	SetHealthy(id string, healthy bool) error
}

// Group is a server group a Checker follows (see Follow): the members to
// probe, their changes, and where their health goes. *balancer.Group
// satisfies it; it is defined here so that health does not import
// balancer.
type Group interface {
	// SetHealthy records a member's health; see StatusSetter.
	StatusSetter
	// Changed returns a channel closed at the group's next change.
	Changed() <-chan struct{}
	// HealthTargets yields the ID and address of every member to probe:
	// all but those in maintenance.
	HealthTargets() iter.Seq2[string, string]
	// HealthChecked tells the group that a checker reports its members'
	// health until release is called, so that the group gives a member it
	// has no report on no new work meanwhile.
	HealthChecked() (release func())
}

// ErrFollowing is returned by SetTargets on a Checker made by Follow,
// whose targets are its group's members.
var ErrFollowing = errors.New("health: the checker follows a group, which sets its targets")

// Target is one backend to check.
type Target struct {
	// ID names the backend in SetHealthy calls and events; use the
	// balancer member's ID. If empty, Addr is used. At most 256 bytes.
	ID string
	// Addr is the backend's address, host:port with port 1–65535.
	// Config.Port, if set, replaces the port for probes.
	Addr string
}

// Follow returns a Checker that probes the members of g and reports their
// health to g, and keeps its targets in step with g's membership until
// Stop: a member added is probed, one removed or put in maintenance is
// forgotten. It is New for a group, with the group's Changed loop built
// in; most callers want it. Like New, it does not probe until Start (or
// CheckNow); Stop ends the following too.
//
// The health model (docs/model.md §11): from Follow until Stop, a member
// of g gets new work only after its first passed probe — the members g has
// now as well as those added later — because Follow tells g that a checker
// decides (HealthChecked). With Config.TrustNew, members are trusted
// instead: they take traffic at once and need UnhealthyThreshold failures
// to go down.
//
// Follow refuses a Config.Setter (g is the setter) with a *ConfigError,
// and returns one if a member's ID or address is refused as a Target
// (which a *balancer.Group never holds). A later change with a refused
// member keeps the previous targets.
func Follow(g Group, cfg Config) (*Checker, error) {
	if cfg.Setter != nil {
		return nil, configErr("Setter", "set", "not with Follow, which reports to the group")
	}
	cfg.Setter = g
	changed := g.Changed()
	c, err := newChecker(cfg, g, func() []Target { return groupTargets(g) })
	if err != nil {
		return nil, err
	}
	if !cfg.TrustNew {
		c.release = g.HealthChecked()
	}
	c.wg.Add(1)
	go c.follow(g, changed)
	return c, nil
}

// follow keeps the targets in step with g until Stop; changed is the
// channel of the membership the targets were last set from.
func (c *Checker) follow(g Group, changed <-chan struct{}) {
	defer c.wg.Done()
	for {
		select {
		case <-changed:
		case <-c.ctx.Done():
			return
		}
		changed = g.Changed()
		_ = c.setTargets(groupTargets(g)) // refused: keep the last good set (see Follow)
	}
}

func groupTargets(g Group) []Target {
	var ts []Target
	for id, addr := range g.HealthTargets() {
		ts = append(ts, Target{ID: id, Addr: addr})
	}
	return ts
}

// State is a target's health as the active probes see it.
type State int

// The states of a target.
const (
	// StatePending: no probe has finished yet. A pending target is not
	// healthy, but the first probe decides its state on its own.
	StatePending State = iota
	// StateHealthy: the last UnhealthyThreshold probes did not all fail.
	StateHealthy
	// StateUnhealthy: the last HealthyThreshold probes did not all pass.
	StateUnhealthy
)

// String returns "pending", "healthy" or "unhealthy".
func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateHealthy:
		return "healthy"
	case StateUnhealthy:
		return "unhealthy"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Status is a snapshot of one target's health.
type Status struct {
	Target
	State        State     // as the active probes see it
	Ejected      bool      // ejected by passive checking
	EjectedUntil time.Time // when the ejection ends, if Ejected
	Healthy      bool      // State == StateHealthy && !Ejected: what the StatusSetter was told
	Passes       int       // consecutive passed probes
	Failures     int       // consecutive failed probes
	Probes       int       // probes counted since the target was added
	LastErr      error     // the last probe's error, nil if it passed
}

// Event is one change of a target's health: a state change of the active
// checks, an ejection, or the end of one.
type Event struct {
	Target
	From, To State     // active state before and after; equal for ejections
	Healthy  bool      // health after the event, as the StatusSetter was told
	Ejected  bool      // whether the target is ejected after the event
	Reason   string    // "timeout", "connection refused", "status 500", "passed 3 checks", "ejected for 30s after 5 failures", "ejection ended", …
	Err      error     // the probe error that caused the change, if any
	Count    int       // consecutive results that caused the change
	At       time.Time // when the change happened
	SetErr   error     // what the StatusSetter returned, if it was called
}

// Result is the outcome of one probe run by CheckNow.
type Result struct {
	Target
	Err     error  // nil if the probe passed
	Reason  string // "ok", or the failure in brief, as in Event.Reason
	State   State  // the target's state after counting this probe
	Healthy bool   // the target's health after counting this probe
}

// Checker probes a group's backends and reports their health.
//
// Every Config.Interval it probes each target (TCP connect, HTTP request,
// UDP exchange or your Probe), with a per-target random offset so that
// probes do not align; a new target is first probed within 100 ms, so it
// need not wait an interval for its first verdict. A target changes state only after
// Config.HealthyThreshold consecutive passes or Config.UnhealthyThreshold
// consecutive failures, as in HAProxy; a new target is pending until its
// first probe, as in Envoy (or healthy, with Config.TrustNew). The
// listener can also report real connection failures (ReportFailure), which
// eject a target for a while once Config.Passive.Failures of them come in a
// row. Every change of health reaches Config.Setter and Config.OnChange.
//
// The zero Checker is not usable. Most callers want Follow, which keeps
// the targets in step with a server group; New takes targets you keep
// current with SetTargets. Run it with Start and end it with Stop.
// CheckNow runs one round of probes synchronously, for tests and for
// callers that schedule probes themselves; Probed tells when every target
// has been probed once.
//
// New, Follow and SetTargets return a *ConfigError for a refused value;
// SetTargets returns ErrFollowing on a Checker made by Follow; Start
// returns ErrStopped after Stop. Probe failures are not returned but
// reported in Events, Results and Status.
//
// A Checker is safe for concurrent use and must not be copied.
type Checker struct {
	cfg        Config
	probe      Probe
	closeIdle  func()
	now        func() time.Time
	sem        chan struct{} // bounds the probes in flight
	wake       chan struct{} // pokes the loop after a change
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup // the loop, probes, deliveries, the follower
	following  bool           // made by Follow: SetTargets is refused
	release    func()         // ends Follow's HealthChecked; nil if none
	probed     chan struct{}  // closed once every target has a counted probe (see Probed)
	probedDue  bool           // the close is queued
	probedOnce sync.Once

	mu         sync.Mutex
	rnd        *rand.Rand
	targets    map[string]*target
	ids        []string // sorted keys of targets
	nEjected   int      // targets with ejected set
	started    bool
	stopped    bool
	queue      []note
	delivering bool
}

// target is the state of one target. Fields are guarded by Checker.mu.
type target struct {
	Target
	probeAddr string
	state     State
	passes    int
	fails     int
	probes    int
	lastErr   error
	told      told
	next      time.Time // next scheduled probe
	running   bool      // a scheduled probe is in flight
	first     bool      // next is the first probe, soon after the target came

	passiveFails int
	ejections    int // ejections in a row, for the growing eject time
	ejected      bool
	ejectedUntil time.Time
}

// told is what the StatusSetter last heard about a target.
type told int8

const (
	toldNothing told = iota
	toldHealthy
	toldUnhealthy
)

// note is a queued event; set says whether to call the StatusSetter, and
// quiet that it only repeats what the setter heard, for the setter alone.
// A probed note carries no event: it closes Checker.probed.
type note struct {
	ev                 Event
	set, quiet, probed bool
}

// New returns a Checker for cfg and the given targets. It validates
// everything, returning a *ConfigError for the first refused value. The
// Checker does not probe until Start (or CheckNow).
func New(cfg Config, targets ...Target) (*Checker, error) {
	return newChecker(cfg, nil, func() []Target { return targets })
}

// newChecker makes the Checker of New and Follow: g is the group followed,
// if any, and targets reads the first targets once the Checker is set up.
func newChecker(cfg Config, g Group, targets func() []Target) (*Checker, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c := &Checker{
		cfg:     cfg,
		now:     cfg.Now,
		sem:     make(chan struct{}, cfg.Concurrency),
		wake:    make(chan struct{}, 1),
		rnd:     cfg.Rand,
		targets: map[string]*target{},
		probed:  make(chan struct{}),
	}
	c.probe, c.closeIdle = builtinProbe(cfg)
	if c.now == nil {
		c.now = time.Now
	}
	if c.rnd == nil {
		c.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.following = g != nil
	if err := c.setTargets(targets()); err != nil {
		c.cancel()
		return nil, err
	}
	return c, nil
}

// Config returns the Checker's configuration with every default filled in
// and the UDP timeout raised, as the Checker uses it.
func (c *Checker) Config() Config { return c.cfg }

// SetTargets makes ts the Checker's whole set of targets; call it whenever
// the group's membership changes. Targets whose ID and Addr stay keep their
// state, counters and schedule, and the StatusSetter is told their health
// again (OnChange is not called): the group may have removed such a member
// and added it back, at its default health, since the last call. New
// targets start pending, are first probed within 100 ms, then every
// interval from a random offset within it (with
// Config.TrustNew they start healthy, and the StatusSetter is told so);
// removed ones are forgotten, and a probe of theirs still in flight is
// ignored. A refused target (bad address, duplicate ID) refuses the whole
// call with a *ConfigError and changes nothing. A Checker made by Follow
// sets its own targets: SetTargets returns ErrFollowing.
func (c *Checker) SetTargets(ts []Target) error {
	if c.following {
		return ErrFollowing
	}
	return c.setTargets(ts)
}

func (c *Checker) setTargets(ts []Target) error {
	norm := make([]Target, len(ts))
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		t, err := t.normalize()
		if err != nil {
			return err
		}
		if seen[t.ID] {
			return configErr("ID", t.ID, "appears twice")
		}
		seen[t.ID] = true
		norm[i] = t
	}
	c.mu.Lock()
	now := c.now()
	next := make(map[string]*target, len(norm))
	for _, t := range norm {
		if old, ok := c.targets[t.ID]; ok && old.Addr == t.Addr {
			next[t.ID] = old
			if old.told != toldNothing {
				c.queue = append(c.queue, note{ev: Event{Target: old.Target, Healthy: old.told == toldHealthy}, set: true, quiet: true})
			}
			continue
		}
		nt := &target{Target: t, probeAddr: t.Addr}
		if c.cfg.Port != 0 {
			host, _, _ := net.SplitHostPort(t.Addr)
			nt.probeAddr = net.JoinHostPort(host, strconv.Itoa(c.cfg.Port))
		}
		if c.cfg.TrustNew {
			nt.state, nt.told = StateHealthy, toldHealthy
			c.queue = append(c.queue, note{ev: Event{Target: t, Healthy: true}, set: true, quiet: true})
		}
		// The first probe comes soon, so a new backend need not wait an
		// interval for traffic; the next at a random point of the
		// interval after it, which spreads the probes of many targets.
		nt.next, nt.first = now.Add(c.jitter(min(c.cfg.Interval, firstProbeSpread))), true
		next[t.ID] = nt
	}
	c.targets = next
	c.ids = slices.Sorted(maps.Keys(next))
	c.nEjected = 0
	for _, t := range next {
		if t.ejected {
			c.nEjected++
		}
	}
	c.checkProbedLocked()
	c.mu.Unlock()
	c.flush()
	c.poke()
	return nil
}

func (t Target) normalize() (Target, error) {
	if t.ID == "" {
		t.ID = t.Addr
	}
	if len(t.ID) > 256 {
		return t, configErr("ID", t.ID, "longer than 256 bytes")
	}
	host, port, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return t, configErr("Addr", t.Addr, "not host:port")
	}
	if host == "" {
		return t, configErr("Addr", t.Addr, "empty host")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p < 1 {
		return t, configErr("Addr", t.Addr, "port out of range 1–65535")
	}
	return t, nil
}

// Start starts probing in the background: each target first within
// 100 ms, then every Config.Interval from its own random offset, at most Config.Concurrency
// probes at once. Starting a started Checker does nothing; starting a
// stopped one returns ErrStopped.
func (c *Checker) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	if !c.started {
		c.started = true
		c.wg.Add(1)
		go c.loop()
	}
	return nil
}

// Stop ends probing: it cancels the probes in flight, ignores their
// results, and returns once every goroutine of the Checker has ended. No
// StatusSetter or OnChange call starts after Stop returns. Stop is
// idempotent; it must not be called from OnChange or a Probe.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.stopped = true
	c.queue = nil
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.probedOnce.Do(func() { close(c.probed) })
	if c.release != nil {
		c.release()
	}
	c.closeIdle()
}

// Probed returns a channel that is closed once every target has had a
// probe counted and the StatusSetter has been told the result — the first
// round, which decides each new target's health — or at once if there
// are no targets, or at Stop. A target added before then is waited for
// too; one removed is not. A service can report itself ready when it is
// closed: after Start that takes at most Interval plus Timeout.
func (c *Checker) Probed() <-chan struct{} { return c.probed }

// checkProbedLocked queues the close of probed if every target has been
// probed, behind the events of those probes.
func (c *Checker) checkProbedLocked() {
	if c.probedDue {
		return
	}
	for _, t := range c.targets {
		if t.probes == 0 {
			return
		}
	}
	c.probedDue = true
	c.queue = append(c.queue, note{probed: true})
}

// CheckNow probes every target once, now, with at most Config.Concurrency
// probes in flight, counts the results as the scheduled loop would, and
// returns them sorted by target ID once every event they caused has been
// delivered (unless another goroutine is delivering at the same time). It
// does not move the schedule. If ctx is canceled, or the Checker is
// stopped, before the probes end, their results are returned but not
// counted. After Stop, CheckNow returns nil.
//
// CheckNow is the seam for tests: one call is one round, so a test can
// assert how many probes a state change takes without sleeping.
func (c *Checker) CheckNow(ctx context.Context) []Result {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	ts := make([]*target, len(c.ids))
	for i, id := range c.ids {
		ts[i] = c.targets[id]
	}
	c.wg.Add(len(ts))
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	errs := make([]error, len(ts))
	var done sync.WaitGroup
	for i, t := range ts {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			c.wg.Done()
			continue
		}
		done.Add(1)
		go func() {
			defer c.wg.Done()
			defer done.Done()
			defer func() { <-c.sem }()
			errs[i] = c.probeOnce(ctx, t)
		}()
	}
	done.Wait()

	c.mu.Lock()
	now := c.now()
	c.releaseLocked(now)
	results := make([]Result, len(ts))
	for i, t := range ts {
		if ctx.Err() == nil {
			c.applyLocked(t, errs[i], now)
		}
		results[i] = Result{Target: t.Target, Err: errs[i], Reason: reason(errs[i]), State: t.state, Healthy: t.healthy()}
	}
	c.mu.Unlock()
	c.flush()
	return results
}

// Status returns the health of target id, and false if there is no such
// target.
func (c *Checker) Status(id string) (Status, bool) {
	c.mu.Lock()
	c.releaseLocked(c.now())
	t, ok := c.targets[id]
	var s Status
	if ok {
		s = t.status()
	}
	c.mu.Unlock()
	c.flush()
	return s, ok
}

// Statuses returns the health of every target, sorted by ID.
func (c *Checker) Statuses() []Status {
	c.mu.Lock()
	c.releaseLocked(c.now())
	out := make([]Status, len(c.ids))
	for i, id := range c.ids {
		out[i] = c.targets[id].status()
	}
	c.mu.Unlock()
	c.flush()
	return out
}

func (t *target) healthy() bool { return t.state == StateHealthy && !t.ejected }

func (t *target) status() Status {
	s := Status{
		Target: t.Target, State: t.state, Ejected: t.ejected, Healthy: t.healthy(),
		Passes: t.passes, Failures: t.fails, Probes: t.probes, LastErr: t.lastErr,
	}
	if t.ejected {
		s.EjectedUntil = t.ejectedUntil
	}
	return s
}

// probeOnce runs one probe of t under the probe timeout.
func (c *Checker) probeOnce(ctx context.Context, t *target) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return c.probe.Probe(ctx, t.probeAddr)
}

// applyLocked counts one probe result of t and queues the event of any
// state change.
func (c *Checker) applyLocked(t *target, err error, now time.Time) {
	if c.stopped || c.targets[t.ID] != t {
		return // stopped, or t was removed or replaced while probed
	}
	t.probes++
	defer c.checkProbedLocked() // after the event: Probed follows what the setter heard
	t.lastErr = err
	if err == nil {
		t.passes, t.fails = t.passes+1, 0
	} else {
		t.passes, t.fails = 0, t.fails+1
	}
	ev := Event{Target: t.Target, From: t.state, Err: err, At: now}
	switch {
	case t.state == StatePending && err == nil:
		ev.To, ev.Count, ev.Reason = StateHealthy, 1, "passed first check"
	case t.state == StatePending:
		ev.To, ev.Count, ev.Reason = StateUnhealthy, 1, reason(err)
	case t.state == StateHealthy && t.fails >= c.cfg.UnhealthyThreshold:
		ev.To, ev.Count, ev.Reason = StateUnhealthy, t.fails, reason(err)
	case t.state == StateUnhealthy && t.passes >= c.cfg.HealthyThreshold:
		ev.To, ev.Count, ev.Reason = StateHealthy, t.passes, "passed "+strconv.Itoa(t.passes)+" checks"
	default:
		return
	}
	t.state = ev.To
	c.notifyLocked(t, ev)
}

// notifyLocked queues ev, with a StatusSetter call if t's health differs
// from what the setter last heard.
func (c *Checker) notifyLocked(t *target, ev Event) {
	ev.Healthy, ev.Ejected = t.healthy(), t.ejected
	now := toldUnhealthy
	if ev.Healthy {
		now = toldHealthy
	}
	set := t.told != now
	t.told = now
	c.queue = append(c.queue, note{ev: ev, set: set})
}

// flush delivers queued events, one at a time and in order. If another
// goroutine is delivering, it delivers ours too.
func (c *Checker) flush() {
	c.mu.Lock()
	if c.delivering || c.stopped || len(c.queue) == 0 {
		c.mu.Unlock()
		return
	}
	c.delivering = true
	c.wg.Add(1)
	defer c.wg.Done()
	for len(c.queue) > 0 && !c.stopped {
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, n := range q {
			if n.probed {
				c.probedOnce.Do(func() { close(c.probed) })
				continue
			}
			if n.set && c.cfg.Setter != nil {
				n.ev.SetErr = c.cfg.Setter.SetHealthy(n.ev.ID, n.ev.Healthy)
			}
			if c.cfg.OnChange != nil && !n.quiet {
				c.cfg.OnChange(n.ev)
			}
		}
		c.mu.Lock()
	}
	c.delivering = false
	c.mu.Unlock()
}

// poke wakes the loop to look at the schedule again.
func (c *Checker) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// loop runs scheduled probes until Stop.
func (c *Checker) loop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		now := c.now()
		c.releaseLocked(now)
		due, wait := c.dueLocked(now)
		c.mu.Unlock()
		c.flush()
		for i, t := range due {
			select {
			case c.sem <- struct{}{}:
			case <-c.ctx.Done():
				c.mu.Lock()
				for _, t := range due[i:] {
					t.running = false
				}
				c.mu.Unlock()
				return
			}
			c.wg.Add(1) // safe: the loop's own count keeps the group above zero
			go c.runScheduled(t)
		}
		timer.Reset(wait)
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// firstProbeSpread bounds how long a new target waits for its first
// probe: the first probes of many targets spread over it.
const firstProbeSpread = 100 * time.Millisecond

// jitter returns a random duration in [0, d).
func (c *Checker) jitter(d time.Duration) time.Duration {
	return time.Duration(c.rnd.Int64N(int64(d)))
}

// dueLocked marks the targets due at now as running, moves their schedule
// on by whole intervals (keeping each target's offset), and returns them
// with the time until the next thing to do.
func (c *Checker) dueLocked(now time.Time) (due []*target, wait time.Duration) {
	iv := c.cfg.Interval
	wait = time.Hour
	for _, id := range c.ids {
		t := c.targets[id]
		if t.ejected {
			wait = min(wait, t.ejectedUntil.Sub(now))
		}
		if t.running {
			continue
		}
		if !t.next.After(now) {
			t.running = true
			if t.first {
				t.next, t.first = now.Add(c.jitter(iv)+1), false
			} else {
				t.next = t.next.Add((now.Sub(t.next)/iv + 1) * iv)
			}
			due = append(due, t)
		}
		wait = min(wait, t.next.Sub(now))
	}
	return due, max(wait, 0)
}

// runScheduled runs one scheduled probe of t; the caller holds a slot of
// c.sem and a count of c.wg for it.
func (c *Checker) runScheduled(t *target) {
	defer c.wg.Done()
	err := c.probeOnce(c.ctx, t)
	<-c.sem
	c.mu.Lock()
	t.running = false
	if c.ctx.Err() == nil {
		c.applyLocked(t, err, c.now())
	}
	c.mu.Unlock()
	c.flush()
	c.poke()
}
