package main

import (
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// latencyScheduler is a user-written balancer.Scheduler, "p2c-latency":
// the power of two random choices by observed latency. Each pick draws two
// members at random in proportion to their weights and takes the one with
// the lower cost, the member's latency estimate times its requests in
// flight plus one (Finagle's and Linkerd's "peak EWMA" idea, simplified).
// A member with no estimate yet costs nothing, so new members get tried.
// With no estimates at all, picks follow the weights.
//
// Its pickers are balancer.Observers: the outcome of every pick, reported
// by the listener through Picked.Done, arrives in Observe and moves the
// member's moving average. The estimates are kept by backend ID in the
// scheduler, so they outlive the snapshots a group builds. Picks take no
// lock and allocate nothing.
//
// A latencyScheduler serves one group; it is safe for concurrent use.
type latencyScheduler struct {
	mu  sync.Mutex
	lat map[string]*atomic.Int64 // backend ID → EWMA in nanoseconds
}

func newLatencyScheduler() *latencyScheduler {
	return &latencyScheduler{lat: map[string]*atomic.Int64{}}
}

// Name is the scheduler's configuration name.
func (*latencyScheduler) Name() string { return "p2c-latency" }

// Build makes a picker over members, sharing the latency estimates.
func (s *latencyScheduler) Build(members []*balancer.Member) (balancer.Picker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &latencyPicker{
		members:  append([]*balancer.Member(nil), members...),
		lat:      make([]*atomic.Int64, len(members)),
		byMember: make(map[*balancer.Member]*atomic.Int64, len(members)),
	}
	for i, m := range members {
		p.total += m.Weight()
		p.cumulative = append(p.cumulative, p.total)
		e := s.lat[m.ID()]
		if e == nil {
			e = new(atomic.Int64)
			s.lat[m.ID()] = e
		}
		p.lat[i], p.byMember[m] = e, e
	}
	return p, nil
}

// Estimate returns backend id's latency estimate, 0 if none.
func (s *latencyScheduler) Estimate(id string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lat[id]; e != nil {
		return time.Duration(e.Load())
	}
	return 0
}

// latencyPicker is one snapshot's picker: immutable except for the
// estimates and the members' live counters it reads.
type latencyPicker struct {
	members    []*balancer.Member
	lat        []*atomic.Int64 // parallel to members
	byMember   map[*balancer.Member]*atomic.Int64
	cumulative []int
	total      int
}

func (p *latencyPicker) Pick(balancer.Key) *balancer.Member {
	a, b := p.draw(), p.draw()
	if p.cost(b) < p.cost(a) {
		a = b
	}
	return p.members[a]
}

// Observe folds the latency of one outcome into its member's estimate:
// estimate += (latency − estimate) / 4. Outcomes without a latency (a
// backend that could not be reached) and members this snapshot does not
// hold (a draining one finishing its sessions) are ignored.
func (p *latencyPicker) Observe(m *balancer.Member, d balancer.DoneInfo) {
	e := p.byMember[m]
	if e == nil || d.Latency <= 0 {
		return
	}
	for {
		old := e.Load()
		next := int64(d.Latency)
		if old != 0 {
			next = old + (next-old)/4
		}
		if e.CompareAndSwap(old, next) {
			return
		}
	}
}

// draw returns a member index with probability proportional to its
// weight.
func (p *latencyPicker) draw() int {
	r := rand.IntN(p.total)
	return sort.SearchInts(p.cumulative, r+1)
}

func (p *latencyPicker) cost(i int) int64 {
	return p.lat[i].Load() * (p.members[i].Outstanding() + 1)
}
