package balancer

import (
	"fmt"
	"iter"
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
	checkers int // health checkers following the group (HealthChecked)
	snap     atomic.Pointer[snapshot]
}

// snapshot is what picks read: immutable once published, except for the
// members' reported health, which only the group reads (Member.reported).
// It is also the group's configuration: a change copies members, gives the
// members it changes new *Member values, and shares the rest, so that it
// costs a copy of N pointers, not N new members, a sort and a map.
type snapshot struct {
	members  []*Member // every member, sorted by ID
	index    idIndex   // ID → position in members
	eligible []*Member // those the picker was built with
	picker   Picker    // noPicker when nothing is eligible
	obs      Observer  // picker, if it observes outcomes
	changed  chan struct{}
}

// member returns member id, or nil.
func (s *snapshot) member(id string) *Member {
	if i := s.index.find(s.members, id); i >= 0 {
		return s.members[i]
	}
	return nil
}

// New returns a group with the given members.
func New(cfg Config, backends ...Backend) (*Group, error) {
	g := &Group{
		sched:    cfg.Scheduler,
		failOpen: cfg.FailOpen,
	}
	if g.sched == nil {
		g.sched = WeightedRoundRobin()
	}
	if v, ok := g.sched.(validator); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	g.snap.Store(&snapshot{picker: noPicker{}, changed: make(chan struct{})})
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
	if m := s.member(id); m != nil && m.sticky {
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
	m := g.snap.Load().member(id)
	return m, m != nil
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
	cur := g.snap.Load()
	_ = g.commit(slices.Clone(cur.members), cur.index, g.sched)
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
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.snap.Load()
	added := make([]*Member, 0, len(backends))
	seen := make(map[string]bool, len(backends))
	for _, b := range backends {
		b, err := b.normalize()
		if err != nil {
			return err
		}
		if seen[b.ID] || cur.index.find(cur.members, b.ID) >= 0 {
			return configErr("ID", b.ID, "already in the group")
		}
		seen[b.ID] = true
		added = append(added, newMember(b, new(stats)))
	}
	slices.SortFunc(added, byID)
	// Merge the sorted additions into the sorted members.
	members := make([]*Member, 0, len(cur.members)+len(added))
	old := cur.members
	for _, m := range added {
		i, _ := slices.BinarySearchFunc(old, m, byID)
		members = append(append(members, old[:i]...), m)
		old = old[i:]
	}
	return g.commit(append(members, old...), nil, g.sched)
}

// Remove removes members by ID. An unknown ID refuses the whole call with
// ErrUnknownBackend.
func (g *Group) Remove(ids ...string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.snap.Load()
	gone := make(map[int]bool, len(ids))
	for _, id := range ids {
		i := cur.index.find(cur.members, id)
		if i < 0 || gone[i] {
			return unknown(id)
		}
		gone[i] = true
	}
	members := make([]*Member, 0, len(cur.members)-len(gone))
	for i, m := range cur.members {
		if !gone[i] {
			members = append(members, m)
		}
	}
	return g.commit(members, nil, g.sched)
}

// SetWeight changes a member's weight, 1–65535. Weight 0 is refused: to
// take a member out of rotation, use SetState(id, Drain).
func (g *Group) SetWeight(id string, weight int) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	return g.update(id, func(m *Member) { m.weight = weight })
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
	return g.update(id, func(m *Member) {
		if m.state == Maint && s != Maint {
			m.reported, m.reportedHealthy = false, false
		}
		m.state = s
	})
}

// SetHealthy records a member's health: an unhealthy member gets no new
// work until it is healthy again. Reporting the health it already has
// publishes nothing.
func (g *Group) SetHealthy(id string, healthy bool) error {
	g.mu.Lock()
	m := g.snap.Load().member(id)
	if m != nil && m.health(g.checkers == 0) == healthy {
		// Picks see no change, but a checker following later will.
		m.reported, m.reportedHealthy = true, healthy
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	return g.update(id, func(m *Member) { m.reported, m.reportedHealthy = true, healthy })
}

// Replace makes backends the group's whole membership, as a configuration
// reload does. Members whose ID and Addr stay keep their health and
// counters; the others are added or removed.
func (g *Group) Replace(backends []Backend) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.snap.Load()
	members := make([]*Member, 0, len(backends))
	seen := make(map[string]bool, len(backends))
	for _, b := range backends {
		b, err := b.normalize()
		if err != nil {
			return err
		}
		if seen[b.ID] {
			return configErr("ID", b.ID, "appears twice")
		}
		seen[b.ID] = true
		old := cur.member(b.ID)
		if old == nil || old.addr != b.Addr {
			members = append(members, newMember(b, new(stats)))
			continue
		}
		m := newMember(b, old.stats)
		m.reported, m.reportedHealthy = old.reported, old.reportedHealthy
		members = append(members, m)
	}
	slices.SortFunc(members, byID)
	return g.commit(members, nil, g.sched)
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
	cur := g.snap.Load()
	if err := g.commit(slices.Clone(cur.members), cur.index, s); err != nil {
		return err
	}
	g.sched = s
	return nil
}

// update applies edit to a copy of member id, or fails with
// ErrUnknownBackend.
func (g *Group) update(id string, edit func(m *Member)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.snap.Load()
	i := cur.index.find(cur.members, id)
	if i < 0 {
		return unknown(id)
	}
	members := slices.Clone(cur.members)
	m := *members[i]
	edit(&m)
	members[i] = &m
	return g.commit(members, cur.index, g.sched)
}

// commit builds the snapshot of members — sorted by ID, and the caller's
// to change — with sched and publishes it, or leaves the group as it was
// if the build fails. index is members' index if their IDs are those of
// the current snapshot in the same order, else nil. Called with g.mu held.
func (g *Group) commit(members []*Member, index idIndex, sched Scheduler) error {
	if index == nil {
		index = newIDIndex(members)
	}
	snap, err := build(members, index, sched, g.failOpen, g.checkers == 0)
	if err != nil {
		return err
	}
	old := g.snap.Swap(snap)
	close(old.changed)
	return nil
}

// build makes the snapshot of members, which it may change: a member whose
// health or stickiness as picks see it differs from its current view is
// replaced by a new one. unreported says the health of a member nobody
// reported on (see HealthChecked).
//
// Eligibility is decided in two passes over the members, not by sorting
// or collecting tiers, so that a change costs O(N) pointer reads plus the
// scheduler's build: the first counts the candidates of each tier, the
// second settles each member's view and collects the eligible ones.
func build(members []*Member, index idIndex, sched Scheduler, failOpen, unreported bool) (*snapshot, error) {
	s := &snapshot{members: members, index: index, picker: noPicker{}, changed: make(chan struct{})}
	// ignoreHealth: no member is healthy and the group fails open.
	ready := func(m *Member, ignoreHealth bool) bool {
		return m.state == Ready && (ignoreHealth || m.health(unreported))
	}
	count := func(ignoreHealth bool) (primaries, standbys int) {
		for _, m := range members {
			if ready(m, ignoreHealth) {
				if m.standby {
					standbys++
				} else {
					primaries++
				}
			}
		}
		return primaries, standbys
	}
	ignoreHealth := false
	primaries, standbys := count(false)
	if primaries+standbys == 0 && failOpen {
		ignoreHealth = true
		primaries, standbys = count(true)
	}
	standbyActive := primaries == 0 && standbys > 0
	n := primaries
	if standbyActive {
		n = standbys
	}
	eligible := make([]*Member, 0, n)
	for i, m := range members {
		healthy := m.health(unreported)
		sticky := m.state != Maint && (ignoreHealth || healthy) && (!m.standby || standbyActive)
		if m.healthy != healthy || m.sticky != sticky {
			v := *m
			v.healthy, v.sticky = healthy, sticky
			m = &v
			members[i] = m
		}
		if ready(m, ignoreHealth) && m.standby == standbyActive {
			eligible = append(eligible, m)
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

// byID orders members by ID, the order of a snapshot's members.
func byID(a, b *Member) int { return strings.Compare(a.id, b.id) }

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
