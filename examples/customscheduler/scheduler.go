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
// Latency comes from outside through Observe, which keeps an exponentially
// weighted moving average per backend ID; estimates outlive the snapshots
// a group builds. Picks take no lock and allocate nothing.
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
	p := &latencyPicker{
		members: append([]*balancer.Member(nil), members...),
		lat:     make([]*atomic.Int64, len(members)),
	}
	for i, m := range members {
		p.total += m.Weight()
		p.cumulative = append(p.cumulative, p.total)
		p.lat[i] = s.estimate(m.ID())
	}
	return p, nil
}

// Observe feeds one latency sample (or the mean of several) for backend
// id into its estimate: estimate += (sample − estimate) / 4.
func (s *latencyScheduler) Observe(id string, sample time.Duration) {
	e := s.estimate(id)
	for {
		old := e.Load()
		next := int64(sample)
		if old != 0 {
			next = old + (int64(sample)-old)/4
		}
		if e.CompareAndSwap(old, next) {
			return
		}
	}
}

// Estimate returns backend id's latency estimate, 0 if none.
func (s *latencyScheduler) Estimate(id string) time.Duration {
	return time.Duration(s.estimate(id).Load())
}

func (s *latencyScheduler) estimate(id string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lat[id]
	if e == nil {
		e = new(atomic.Int64)
		s.lat[id] = e
	}
	return e
}

// latencyPicker is one snapshot's picker: immutable except for the
// estimates and the members' live counters it reads.
type latencyPicker struct {
	members    []*balancer.Member
	lat        []*atomic.Int64
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

// draw returns a member index with probability proportional to its
// weight.
func (p *latencyPicker) draw() int {
	r := rand.IntN(p.total)
	return sort.SearchInts(p.cumulative, r+1)
}

func (p *latencyPicker) cost(i int) int64 {
	return p.lat[i].Load() * (p.members[i].Outstanding() + 1)
}
