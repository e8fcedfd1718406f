package balancer

import (
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin returns the rr scheduler: each eligible member in turn, in ID
// order, ignoring weights except that weight-0 members are never picked.
// A pick is one atomic add.
func RoundRobin() Scheduler { return rrScheduler{} }

type rrScheduler struct{}

func (rrScheduler) Name() string { return NameRR }

func (rrScheduler) Build(members []*Member) (Picker, error) {
	p := &rrPicker{members: append([]*Member(nil), members...)}
	// Start each snapshot at a random place so that frequent rebuilds do
	// not favour the first member.
	p.next.Store(rand.Uint64())
	return p, nil
}

type rrPicker struct {
	members []*Member
	_       cacheLinePad
	next    atomic.Uint64
	_       cacheLinePad
}

func (p *rrPicker) Pick(Key) *Member {
	n := p.next.Add(1)
	return p.members[n%uint64(len(p.members))]
}
