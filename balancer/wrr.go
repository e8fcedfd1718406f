package balancer

import (
	"container/heap"
	"math/rand/v2"
	"sync/atomic"
)

// WeightedRoundRobin returns the wrr scheduler: smooth weighted round
// robin. Over each cycle of sum(weights)/gcd(weights) picks every member is
// picked in proportion to its weight, and its picks are spread through the
// cycle rather than bunched: weights 5:1:1 give a a b a c a a.
//
// The cycle is computed once per snapshot, so a pick is one atomic add and
// one table read. For cycles up to smoothExactLimit steps × members the
// sequence is exactly nginx's smooth weighted round robin; beyond that
// (thousands of members with unequal weights) it is the equivalent
// earliest-deadline order, which is as even but differs in tie-breaking.
func WeightedRoundRobin() Scheduler { return wrrScheduler{} }

type wrrScheduler struct{}

func (wrrScheduler) Name() string { return NameWRR }

func (wrrScheduler) Build(members []*Member) (Picker, error) {
	w := make([]int, len(members))
	for i, m := range members {
		w[i] = m.weight
	}
	p := &wrrPicker{members: append([]*Member(nil), members...), seq: smoothSequence(w)}
	p.n, p.m = uint32(len(p.seq)), fastmodM(uint32(len(p.seq)))
	p.next.Store(rand.Uint32())
	return p, nil
}

type wrrPicker struct {
	members []*Member
	seq     []uint32 // indices into members, one cycle
	n       uint32   // len(seq)
	m       uint64   // fastmod multiplier for n
	_       cacheLinePad
	next    atomic.Uint32 // wraps every 2^32 picks: one uneven step
	_       cacheLinePad
}

func (p *wrrPicker) Pick(Key) *Member {
	return p.members[p.seq[fastmod(p.next.Add(1), p.m, p.n)]]
}

// smoothExactLimit bounds the work (cycle length × members) of the exact
// nginx algorithm, which costs O(members) per step.
const smoothExactLimit = 1 << 22

// smoothSequence returns one cycle of smooth weighted round robin over
// weights (all > 0).
func smoothSequence(weights []int) []uint32 {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	total := 0
	for _, w := range weights {
		total += w / g
	}
	if total*len(weights) <= smoothExactLimit {
		return nginxSequence(weights, g, total)
	}
	return deadlineSequence(weights, g, total)
}

// nginxSequence is nginx's smooth weighted round robin: each step adds
// every weight to its member's credit, picks the largest credit, and takes
// the total back from it.
func nginxSequence(weights []int, g, total int) []uint32 {
	seq := make([]uint32, 0, total)
	credit := make([]int, len(weights))
	for range total {
		best := 0
		for i, w := range weights {
			credit[i] += w / g
			if credit[i] > credit[best] {
				best = i
			}
		}
		credit[best] -= total
		seq = append(seq, uint32(best))
	}
	return seq
}

// deadlineSequence orders every member's k-th pick by its ideal time
// (k+½)/weight, the earliest-deadline-first schedule; ties go to the
// heavier member, then the lower index.
func deadlineSequence(weights []int, g, total int) []uint32 {
	h := make(deadlineHeap, len(weights))
	for i, w := range weights {
		h[i] = deadline{idx: uint32(i), w: w / g}
	}
	heap.Init(&h)
	seq := make([]uint32, 0, total)
	for range total {
		d := &h[0]
		seq = append(seq, d.idx)
		d.k++
		heap.Fix(&h, 0)
	}
	return seq
}

type deadline struct {
	idx uint32
	w   int // reduced weight
	k   int // picks so far
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	// (2k_i+1)/w_i < (2k_j+1)/w_j, cross-multiplied.
	a, b := (2*h[i].k+1)*h[j].w, (2*h[j].k+1)*h[i].w
	if a != b {
		return a < b
	}
	if h[i].w != h[j].w {
		return h[i].w > h[j].w
	}
	return h[i].idx < h[j].idx
}
func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(any)     { panic("balancer: deadlineHeap is fixed-size") }
func (h *deadlineHeap) Pop() any     { panic("balancer: deadlineHeap is fixed-size") }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
