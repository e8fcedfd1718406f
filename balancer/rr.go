package balancer

import (
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin returns the rr scheduler: each eligible member in turn, in ID
// order, ignoring weights.
// A pick is one atomic add.
func RoundRobin() Scheduler { return rrScheduler{} }

type rrScheduler struct{}

func (rrScheduler) Name() string { return NameRR }

func (rrScheduler) Build(members []*Member) (Picker, error) {
	return newRRPicker(append([]*Member(nil), members...)), nil
}

// newRRPicker returns a picker that walks members in turn; wrr's stored
// cycle is walked by it too. It starts at a random place so that
// frequent rebuilds do not favour the first member.
func newRRPicker(members []*Member) *rrPicker {
	p := &rrPicker{members: members}
	p.n, p.m = uint32(len(members)), fastmodM(uint32(len(members)))
	p.next.Store(rand.Uint32())
	return p
}

type rrPicker struct {
	members []*Member
	n       uint32
	m       uint64 // fastmod multiplier for n
	_       cacheLinePad
	next    atomic.Uint32 // wraps every 2^32 picks: one uneven step
	_       cacheLinePad
}

func (p *rrPicker) Pick(Key) *Member {
	return p.members[fastmod(p.next.Add(1), p.m, p.n)]
}
