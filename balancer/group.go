package balancer

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Config configures a Group. The zero value is a weighted-round-robin group
// that fails closed; its members are healthy until reported otherwise, or,
// while a health checker follows the group, from their first passed probe
// (see Group.HealthChecked).
type Config struct {
	// Scheduler picks among eligible members. If nil,
	// WeightedRoundRobin() is used.
	Scheduler Scheduler
	// FailOpen decides what happens when no member is healthy. If false
	// (the default, as HAProxy does), picks return ErrNoBackend. If true
	// (as nginx does), picks ignore health and use every Ready member,
	// on the reasoning that a health check that fails
	// everywhere is more often wrong than every backend.
	FailOpen bool
}

// Group is a server group: the members one listener (or one forwarding
// rule) balances over, with their weights, health and tiers. A plain group
// is the CLB's default or virtual server group; a group with Standby
// members is a primary/standby group, whose standby tier takes new work
// only while no primary member can.
//
// Every change — Add, Remove, SetWeight, SetState, SetHealthy, Replace,
// SetScheduler — is serialized and builds a new immutable snapshot with a
// fresh Picker, published with one atomic store. Pick, PickSticky and
// PickNext only load the current snapshot: they take no lock and allocate
// nothing. Changes are all-or-nothing: a change that fails validation or
// whose scheduler build fails leaves the group as it was.
//
// Eligible members are those in State Ready that are healthy, in the
// primary tier if any primary is eligible, else in the standby tier. When
// none is eligible the group fails closed (ErrNoBackend) unless
// Config.FailOpen is set.
//
// Health is what SetHealthy last reported. A member nobody has reported on
// — one just added, or one just out of Maint — is healthy in a group left
// to itself, and unhealthy while a health checker follows the group
// (HealthChecked), so that a new backend gets traffic only after it has
// passed a probe (docs/model.md §11).
//
// A pick returns a Picked, counting the work as begun on the member; its
// Done reports the outcome and ends the work. Most callers want Pick, or
// PickSticky for a client with a session.
//
// Create a Group with New. A Group is safe for concurrent use and must not
// be copied.
type Group struct {
	mu       sync.Mutex // serializes changes
	sched    Scheduler
	failOpen bool
	checkers int              // health checkers following the group (HealthChecked)
	entries  map[string]entry // the configuration; replaced, never mutated
	snap     atomic.Pointer[snapshot]
}

// entry is one backend's configuration and state; stored by value.
type entry struct {
	b        Backend
	healthy  bool // as last reported, if reported
	reported bool // SetHealthy was called since the member joined or left Maint
	stats    *stats
}

// health is the entry's health as picks see it; unreported is that of a
// member nobody reported on (see Group.HealthChecked).
func (e entry) health(unreported bool) bool {
	if e.reported {
		return e.healthy
	}
	return unreported
}

// snapshot is what picks read: immutable once published.
type snapshot struct {
	members  []*Member // every member, sorted by ID
	eligible []*Member // those the picker was built with
	byID     map[string]*Member
	picker   Picker   // noPicker when nothing is eligible
	obs      Observer // picker, if it observes outcomes
	changed  chan struct{}
}

// New returns a group with the given members.
func New(cfg Config, backends ...Backend) (*Group, error) {
	g := &Group{
		sched:    cfg.Scheduler,
		failOpen: cfg.FailOpen,
		entries:  map[string]entry{},
	}
	if g.sched == nil {
		g.sched = WeightedRoundRobin()
	}
	if v, ok := g.sched.(validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	g.snap.Store(&snapshot{picker: noPicker{}, byID: map[string]*Member{}, changed: make(chan struct{})})
	if err := g.Add(backends...); err != nil {
		return nil, err
	}
	return g, nil
}

// Pick chooses a member for new work described by k and counts the work as
// begun on it; call Done on the result when the work ends. It returns
// ErrNoBackend if no member is eligible.
func (g *Group) Pick(k Key) (Picked, error) {
	return g.snap.Load().pick(k)
}

// PickSticky is Pick for a client that was placed on member id before (by a
// session cookie or a source-IP affinity entry). It returns that member if
// it is still in the group, healthy, and in the tier now taking traffic —
// even in State Drain, because draining lets existing sessions finish, but
// not in Maint — and otherwise a fresh pick. A forged or stale id can
// therefore only ever yield a current member. Compare the result's ID with
// id to learn whether the session held. Like Pick, it counts the work as
// begun; call Done on the result.
func (g *Group) PickSticky(id string, k Key) (Picked, error) {
	s := g.snap.Load()
	if m := s.byID[id]; m != nil && m.sticky {
		return s.begin(m), nil
	}
	return s.pick(k)
}

// PickNext chooses a member for k that is not in tried, for a caller
// whose connection to each tried member failed (HAProxy's redispatch). It
// asks the scheduler first and, if that keeps answering with tried members
// (as a hash scheduler does for the same key), takes the next untried
// eligible member after the last one in tried, in ID order. It returns
// ErrNoBackend when every eligible member has been tried. Like Pick, it
// counts the work as begun; call Done on the result.
func (g *Group) PickNext(k Key, tried []*Member) (Picked, error) {
	s := g.snap.Load()
	if len(tried) == 0 {
		return s.pick(k)
	}
	isTried := func(m *Member) bool {
		for _, t := range tried {
			if t.id == m.id {
				return true
			}
		}
		return false
	}
	for range 4 {
		m := s.picker.Pick(k)
		if m == nil {
			return Picked{}, ErrNoBackend
		}
		if !isTried(m) {
			return s.begin(m), nil
		}
	}
	last := tried[len(tried)-1].id
	start, _ := slices.BinarySearchFunc(s.eligible, last, func(m *Member, id string) int { return strings.Compare(m.id, id) })
	for i := range s.eligible {
		if m := s.eligible[(start+i)%len(s.eligible)]; !isTried(m) {
			return s.begin(m), nil
		}
	}
	return Picked{}, ErrNoBackend
}

func (s *snapshot) pick(k Key) (Picked, error) {
	if m := s.picker.Pick(k); m != nil {
		return s.begin(m), nil
	}
	return Picked{}, ErrNoBackend
}

// begin counts work on m and pairs it with the snapshot's observer, so that
// Done reaches the picker that made the pick even after a rebuild.
func (s *snapshot) begin(m *Member) Picked {
	m.Begin()
	return Picked{Member: m, obs: s.obs}
}

// Member returns the current view of member id.
func (g *Group) Member(id string) (*Member, bool) {
	m, ok := g.snap.Load().byID[id]
	return m, ok
}

// Members returns every member, eligible or not, sorted by ID.
func (g *Group) Members() []*Member {
	return slices.Clone(g.snap.Load().members)
}

// Scheduler returns the group's scheduler.
func (g *Group) Scheduler() Scheduler {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sched
}

// IDs returns every member's ID, sorted: the backends a session cookie may
// name (session.Config.Groups reads it).
func (g *Group) IDs() []string {
	ms := g.snap.Load().members
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.id
	}
	return ids
}

// HealthTargets yields the ID and address of every member a health checker
// should probe — all but those in Maint — in ID order (health.Follow reads
// it).
func (g *Group) HealthTargets() iter.Seq2[string, string] {
	ms := g.snap.Load().members
	return func(yield func(id, addr string) bool) {
		for _, m := range ms {
			if m.state != Maint && !yield(m.id, m.addr) {
				return
			}
		}
	}
}

// HealthChecked tells the group that a health checker reports its members'
// health from now until release is called. Meanwhile a member whose health
// has not been reported — every member already there and never reported,
// each member added later, and each member leaving Maint — is unhealthy,
// so it gets new work only once the checker has seen it pass. health.Follow
// calls it; call it yourself if your own checker calls SetHealthy. Calls
// nest; release is idempotent.
func (g *Group) HealthChecked() (release func()) {
	g.setCheckers(+1)
	var once sync.Once
	return func() { once.Do(func() { g.setCheckers(-1) }) }
}

func (g *Group) setCheckers(delta int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checkers += delta
	// Only the default health of unreported members changed, and a
	// scheduler that built the current snapshot builds this one.
	snap, err := build(g.entries, g.sched, g.failOpen, g.checkers == 0)
	if err == nil {
		g.publish(snap)
	}
}

// Changed returns a channel that is closed at the next change of the
// group. Watchers (a listener draining connections of removed members)
// wait on it, then read Members and call Changed again.
func (g *Group) Changed() <-chan struct{} {
	return g.snap.Load().changed
}

// Add adds backends. An ID already in the group, a duplicate within
// backends, or an invalid field refuses the whole call.
func (g *Group) Add(backends ...Backend) error {
	return g.change(func(next map[string]entry) error {
		for _, b := range backends {
			b, err := b.normalize()
			if err != nil {
				return err
			}
			if _, dup := next[b.ID]; dup {
				return configErr("ID", b.ID, "already in the group")
			}
			next[b.ID] = entry{b: b, stats: new(stats)}
		}
		return nil
	})
}

// Remove removes members by ID. An unknown ID refuses the whole call with
// ErrUnknownBackend.
func (g *Group) Remove(ids ...string) error {
	return g.change(func(next map[string]entry) error {
		for _, id := range ids {
			if _, ok := next[id]; !ok {
				return unknown(id)
			}
			delete(next, id)
		}
		return nil
	})
}

// SetWeight changes a member's weight, 1–65535. Weight 0 is refused: to
// take a member out of rotation, use SetState(id, Drain).
func (g *Group) SetWeight(id string, weight int) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	return g.update(id, func(e *entry) { e.b.Weight = weight })
}

// SetState puts a member in State Ready, Drain or Maint. Drain stops new
// work but lets the member's connections and sticky sessions carry on;
// Maint stops all work, moves its sticky sessions, and takes the member
// out of HealthTargets, so health checkers stop probing it. A member
// leaving Maint has no reported health: while a checker follows the group
// it gets new work again once it has passed a probe.
func (g *Group) SetState(id string, s State) error {
	if err := s.check(); err != nil {
		return err
	}
	return g.update(id, func(e *entry) {
		if e.b.State == Maint && s != Maint {
			e.reported = false
		}
		e.b.State = s
	})
}

// SetHealthy records a member's health: an unhealthy member gets no new
// work until it is healthy again. Reporting the health it already has
// publishes nothing.
func (g *Group) SetHealthy(id string, healthy bool) error {
	g.mu.Lock()
	e, ok := g.entries[id]
	if ok && e.health(g.checkers == 0) == healthy {
		if !e.reported {
			// Picks see no change, but a checker following later will.
			e.healthy, e.reported = healthy, true
			g.entries = maps.Clone(g.entries)
			g.entries[id] = e
		}
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	return g.update(id, func(e *entry) { e.healthy, e.reported = healthy, true })
}

// Replace makes backends the group's whole membership, as a configuration
// reload does. Members whose ID and Addr stay keep their health and
// counters; the others are added or removed.
func (g *Group) Replace(backends []Backend) error {
	return g.change(func(next map[string]entry) error {
		old := maps.Clone(next)
		clear(next)
		for _, b := range backends {
			b, err := b.normalize()
			if err != nil {
				return err
			}
			if _, dup := next[b.ID]; dup {
				return configErr("ID", b.ID, "appears twice")
			}
			e, kept := old[b.ID]
			if !kept || e.b.Addr != b.Addr {
				e = entry{stats: new(stats)}
			}
			e.b = b
			next[b.ID] = e
		}
		return nil
	})
}

// SetScheduler switches the group to another scheduler.
func (g *Group) SetScheduler(s Scheduler) error {
	if s == nil {
		return configErr("Scheduler", "nil", "missing")
	}
	if v, ok := s.(validator); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	snap, err := build(g.entries, s, g.failOpen, g.checkers == 0)
	if err != nil {
		return err
	}
	g.sched = s
	g.publish(snap)
	return nil
}

// update applies edit to member id's entry, or fails with
// ErrUnknownBackend.
func (g *Group) update(id string, edit func(e *entry)) error {
	return g.change(func(next map[string]entry) error {
		e, ok := next[id]
		if !ok {
			return unknown(id)
		}
		edit(&e)
		next[id] = e
		return nil
	})
}

// change applies edit to a copy of the configuration, builds the snapshot
// and publishes both, or leaves everything as it was if either step fails.
func (g *Group) change(edit func(next map[string]entry) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	next := maps.Clone(g.entries)
	if err := edit(next); err != nil {
		return err
	}
	snap, err := build(next, g.sched, g.failOpen, g.checkers == 0)
	if err != nil {
		return err
	}
	g.entries = next
	g.publish(snap)
	return nil
}

// publish stores snap and wakes the watchers of the previous one. Called
// with g.mu held.
func (g *Group) publish(snap *snapshot) {
	old := g.snap.Swap(snap)
	close(old.changed)
}

// build makes a snapshot of entries; unreported says the health of a
// member nobody reported on (see HealthChecked).
func build(entries map[string]entry, sched Scheduler, failOpen, unreported bool) (*snapshot, error) {
	ids := slices.Sorted(maps.Keys(entries))
	s := &snapshot{
		picker:  noPicker{},
		members: make([]*Member, 0, len(ids)),
		byID:    make(map[string]*Member, len(ids)),
		changed: make(chan struct{}),
	}
	for _, id := range ids {
		e := entries[id]
		m := &Member{id: id, addr: e.b.Addr, weight: e.b.Weight, state: e.b.State, standby: e.b.Standby, healthy: e.health(unreported), stats: e.stats}
		s.members = append(s.members, m)
		s.byID[id] = m
	}
	eligible, standbyActive := choose(s.members, func(m *Member) bool { return m.healthy })
	if len(eligible) == 0 && failOpen {
		eligible, standbyActive = choose(s.members, func(*Member) bool { return true })
		for _, m := range s.members {
			m.sticky = m.state != Maint && (!m.standby || standbyActive)
		}
	} else {
		for _, m := range s.members {
			m.sticky = m.state != Maint && m.healthy && (!m.standby || standbyActive)
		}
	}
	if len(eligible) > 0 {
		p, err := sched.Build(eligible)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, fmt.Errorf("balancer: scheduler %q built a nil Picker", sched.Name())
		}
		s.picker = p
		s.obs, _ = p.(Observer)
		s.eligible = eligible
	}
	return s, nil
}

// noPicker is the picker of a snapshot with no eligible member.
type noPicker struct{}

func (noPicker) Pick(Key) *Member { return nil }

// choose returns the Ready members that pass ok, from the primary tier if
// it has any, else from the standby tier, and whether the standby tier is
// the one taking traffic.
func choose(members []*Member, ok func(*Member) bool) (eligible []*Member, standby bool) {
	var primaries, standbys []*Member
	for _, m := range members {
		if m.state != Ready || !ok(m) {
			continue
		}
		if m.standby {
			standbys = append(standbys, m)
		} else {
			primaries = append(primaries, m)
		}
	}
	if len(primaries) > 0 {
		return primaries, false
	}
	return standbys, len(standbys) > 0
}

func unknown(id string) error {
	return wrap(fmt.Sprintf("backend %q", id), ErrUnknownBackend)
}

// String describes the group's members for logs and debugging.
func (g *Group) String() string {
	var b strings.Builder
	b.WriteString("balancer.Group{")
	for i, m := range g.snap.Load().members {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s(%s w=%d", m.id, m.addr, m.weight)
		if m.state != Ready {
			b.WriteString(" " + m.state.String())
		}
		if m.standby {
			b.WriteString(" standby")
		}
		if !m.healthy {
			b.WriteString(" down")
		}
		b.WriteString(")")
	}
	b.WriteString("}")
	return b.String()
}
