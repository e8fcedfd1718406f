package balancer

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// WeightedRoundRobin returns the wrr scheduler: nginx's [smooth weighted
// round robin]. Over each cycle of sum(weights)/gcd(weights) picks every
// member is picked in proportion to its weight, and its picks are spread
// through the cycle rather than bunched: weights 5:1:1 give a a b a c a a.
// Each step adds every member's weight to its credit, picks the member
// with the most credit (the first in ID order on a tie) and takes the
// total weight back from it; the picks are exactly nginx's.
//
// A cycle of up to 64Ki picks is computed once per snapshot, so a pick is
// one atomic add and one table read. Longer cycles (thousands of members
// with unequal weights: up to sum(weights) ≈ 650 million picks at 10,000
// members) are computed lazily, 4096 picks at a time, into two reused
// blocks, so memory stays O(members) whatever the weights; a pick is
// still one atomic add and one table read, and the pick that crosses into
// a new block computes it under a lock (about O(log² members) a step,
// amortized over the block). A long cycle starts at its beginning, as
// nginx does after a reload; a short one at a random point, so that
// frequent rebuilds do not favour the heaviest member.
//
// [smooth weighted round robin]: https://github.com/phusion/nginx/commit/27e94984486058d73157038f7950a0a36ecc6e35
func WeightedRoundRobin() Scheduler { return wrrScheduler{} }

type wrrScheduler struct{}

func (wrrScheduler) Name() string { return NameWRR }

const (
	// wrrTableLimit is the longest cycle kept whole: 64Ki picks, 256 KiB.
	wrrTableLimit = 1 << 16
	// wrrBlockLen is the number of picks in one lazily computed block:
	// large enough that the lock at a block boundary is rare, small
	// enough that the one pick in a block that computes the next is not
	// held up long (under 1 ms at 10,000 members of distinct weights).
	wrrBlockLen = 1024
)

func (wrrScheduler) Build(members []*Member) (Picker, error) {
	w := make([]int, len(members))
	for i, m := range members {
		w[i] = m.Weight()
	}
	return newWRRPicker(append([]*Member(nil), members...), w, wrrTableLimit), nil
}

// newWRRPicker returns a picker over members with the given weights,
// keeping the whole cycle if it is at most tableLimit picks long.
func newWRRPicker(members []*Member, weights []int, tableLimit int64) Picker {
	gen := newSmoothWRR(weights)
	if gen.total <= tableLimit {
		p := &wrrPicker{members: members, seq: make([]uint32, gen.total)}
		gen.fill(p.seq)
		p.n, p.m = uint32(len(p.seq)), fastmodM(uint32(len(p.seq)))
		p.next.Store(rand.Uint32())
		return p
	}
	p := &wrrLazyPicker{members: members, gen: gen}
	for i := range p.blocks {
		p.blocks[i].seq = make([]atomic.Uint32, wrrBlockLen)
		p.blocks[i].start.Store(wrrNoBlock)
	}
	p.build(0)
	p.build(1)
	return p
}

// wrrPicker walks a whole precomputed cycle.
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

// wrrLazyPicker walks a long cycle through two blocks of it, computed on
// demand. Block k (picks k·wrrBlockLen onwards) lives in blocks[k%2]; a
// pick reads its entry between two loads of the block's start, like a
// seqlock, so a block can be rewritten in place without a lock on the
// read side and without allocating. The first pick of block k computes
// block k+1, so that the picks after it rarely wait at the boundary.
type wrrLazyPicker struct {
	members []*Member
	blocks  [2]wrrBlock
	_       cacheLinePad
	next    atomic.Uint64 // picks taken; does not wrap in practice
	_       cacheLinePad
	mu      sync.Mutex // serializes building blocks; guards gen and built
	gen     *smoothWRR // positioned at the end of the newest block
	built   uint64     // blocks built so far; the newest two are kept
}

type wrrBlock struct {
	start atomic.Uint64   // position of seq[0], or wrrNoBlock while being written
	seq   []atomic.Uint32 // indices into members
}

// wrrNoBlock marks a block being written.
const wrrNoBlock = math.MaxUint64

func (p *wrrLazyPicker) Pick(Key) *Member {
	i := p.next.Add(1) - 1
	start := i &^ (wrrBlockLen - 1)
	if i == start {
		p.buildTo(i/wrrBlockLen + 1)
	}
	b := &p.blocks[(i/wrrBlockLen)&1]
	if b.start.Load() == start {
		idx := b.seq[i-start].Load()
		if b.start.Load() == start {
			return p.members[idx]
		}
	}
	return p.members[p.slowPick(i)]
}

// buildTo builds the blocks up to block k.
func (p *wrrLazyPicker) buildTo(k uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.built <= k {
		p.build(p.built)
	}
}

// slowPick returns the entry for pick i when its block is not ready: it
// builds the blocks up to i's. A pick that took its number more than a
// block before the newest one was built has lost its place, which is
// rewritten; it takes a new number instead.
func (p *wrrLazyPicker) slowPick(i uint64) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch k := i / wrrBlockLen; {
		case k >= p.built:
			p.build(p.built)
		case k+2 < p.built:
			i = p.next.Add(1) - 1
		default: // block k is one of the two kept, and only p.mu writes them
			return p.blocks[k&1].seq[i%wrrBlockLen].Load()
		}
	}
}

// build computes block k, the next one, into its buffer. The caller holds
// p.mu or owns p.
func (p *wrrLazyPicker) build(k uint64) {
	b := &p.blocks[k&1]
	b.start.Store(wrrNoBlock)
	for j := range b.seq {
		b.seq[j].Store(p.gen.next())
	}
	b.start.Store(k * wrrBlockLen)
	p.built = k + 1
}

// smoothWRR generates nginx's smooth weighted round robin sequence one
// step at a time, in O(log² n) amortized per step rather than nginx's
// O(n), so that a cycle over thousands of members can be walked without
// being stored.
//
// Before step s (1-based within the cycle) member i's credit is
// s·w[i] − total·k[i], where k[i] counts its picks so far: a line in s
// with slope w[i] and intercept b[i] = −total·k[i]. A step picks the
// highest line at s (the lowest index on a tie) and lowers its intercept
// by total. A kinetic tournament tree keeps the highest line: each node
// holds its subtree's winner at the current step and the first step at
// which any comparison below it may change (melt); advancing recomputes
// only melted nodes, and a pick recomputes the picked leaf's path. After
// total steps every member has been picked w[i] times, every credit is
// zero again, and the cycle restarts.
type smoothWRR struct {
	nodes []swNode // heap order from 1; leaves from leaf, one per member
	leaf  int      // index of the first leaf: a power of two ≥ members
	total int64    // sum of w: the cycle length
	s     int64    // steps taken in this cycle
}

// swNode is a node of the tournament tree, holding a copy of its winner's
// line so that a comparison reads only the two children, which share a
// cache line.
type swNode struct {
	w, b int64 // the winner's slope (weight) and intercept
	melt int64 // the step at which a comparison in the subtree may change
	win  int32 // the winning member, −1 for none (padding)
	_    int32
}

const never = math.MaxInt64

// newSmoothWRR returns the generator at the start of the cycle over
// weights, all > 0.
func newSmoothWRR(weights []int) *smoothWRR {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	leaf := 1
	for leaf < len(weights) {
		leaf *= 2
	}
	sw := &smoothWRR{nodes: make([]swNode, 2*leaf), leaf: leaf}
	for i := range leaf {
		n := &sw.nodes[leaf+i]
		n.melt, n.win = never, -1
		if i < len(weights) {
			n.w, n.win = int64(weights[i]/g), int32(i)
			sw.total += n.w
		}
	}
	sw.restart()
	return sw
}

// restart begins a new cycle: every credit zero.
func (sw *smoothWRR) restart() {
	sw.s = 0
	for i := sw.leaf; i < len(sw.nodes); i++ {
		sw.nodes[i].b = 0
	}
	for node := sw.leaf - 1; node >= 1; node-- {
		sw.combine(node, 1)
	}
}

// next takes one step and returns the member picked.
func (sw *smoothWRR) next() uint32 {
	s := sw.s + 1
	sw.advance(1, s)
	best := sw.nodes[1].win
	leaf := sw.leaf + int(best)
	sw.nodes[leaf].b -= sw.total
	for node := leaf / 2; node >= 1; node /= 2 {
		sw.combine(node, s)
	}
	sw.s = s
	if s == sw.total {
		sw.restart()
	}
	return uint32(best)
}

// fill writes the next len(dst) picks to dst.
func (sw *smoothWRR) fill(dst []uint32) {
	for i := range dst {
		dst[i] = sw.next()
	}
}

// advance brings node's subtree up to date for step s.
func (sw *smoothWRR) advance(node int, s int64) {
	if sw.nodes[node].melt > s {
		return
	}
	sw.advance(2*node, s)
	sw.advance(2*node+1, s)
	sw.combine(node, s)
}

// combine sets node's winner at step s from its children's, which must be
// up to date, and the step at which that comparison next changes.
func (sw *smoothWRR) combine(node int, s int64) {
	l, r := &sw.nodes[2*node], &sw.nodes[2*node+1]
	win, melt := l, min(l.melt, r.melt)
	switch {
	case r.win < 0: // padding on the right: l, or nothing, wins
	case s*l.w+l.b >= s*r.w+r.b: // the left (lower index) wins ties
		if r.w > l.w { // r overtakes at the first s' with (r.w−l.w)s' > l.b−r.b
			melt = min(melt, (l.b-r.b)/(r.w-l.w)+1)
		}
	default:
		win = r
		if l.w > r.w { // l catches up at the first s' with (l.w−r.w)s' ≥ r.b−l.b
			melt = min(melt, (r.b-l.b+l.w-r.w-1)/(l.w-r.w))
		}
	}
	n := &sw.nodes[node]
	n.w, n.b, n.win, n.melt = win.w, win.b, win.win, melt
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
