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
// A pick is one atomic add and one table read, and a build is O(members),
// so that a group under churn does not recompute a whole cycle on every
// change. A cycle of up to 1024 picks is computed with the snapshot and
// walked from a random point. A longer one of up to 64Ki picks (512 KiB)
// is kept whole but computed 1024 picks at a time: the first block with
// the snapshot, the others by the pick that first reaches the block before
// them, so the picks after it rarely wait; it is walked from a random
// point of its first block. Longer cycles (thousands of members with
// unequal weights: up to sum(weights) ≈ 650 million picks at 10,000
// members) are computed the same way into two reused blocks, so memory
// stays O(members) whatever the weights (0.7 MB at 10,000 members of
// distinct weights), and start at their beginning, as nginx does after a
// reload. A step of the computation costs O(log² d) for d distinct weights
// (about 0.2 µs at 10,000 distinct weights, 0.06 µs at 100), so a pick
// costs that much amortized while its block is new, and the pick that
// computes a block waits for 1024 steps. The steps come from a tree over
// the distinct weights that a build starts with only the heaviest ones,
// as many members as its first block can reach; the picks that compute
// later blocks grow it, into room the build made, so that a change costs
// its one block and not a tree over every weight. Random starting points
// keep frequent rebuilds from favouring the heaviest member, whose turn
// comes first in the cycle.
//
// [smooth weighted round robin]: https://github.com/phusion/nginx/commit/27e94984486058d73157038f7950a0a36ecc6e35
func WeightedRoundRobin() Scheduler { return wrrScheduler{} }

type wrrScheduler struct{}

func (wrrScheduler) Name() string { return NameWRR }

const (
	// wrrTableLimit is the longest cycle kept whole: 64Ki picks, 512 KiB.
	// Longer ones are walked through two reused blocks.
	wrrTableLimit = 1 << 16
	// wrrBlockLen is the number of picks in one lazily computed block:
	// large enough that the lock at a block boundary is rare, small
	// enough that the one pick in a block that computes the next is not
	// held up long (about 0.2 ms at 10,000 members of distinct weights).
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
	gen := newSmoothWRR(weights, wrrBlockLen) // the build computes one block at most
	switch {
	case gen.total <= min(wrrBlockLen, tableLimit):
		// A stored cycle (the members themselves, not indices: one
		// dependent load less per pick) is walked in turn, as rr walks
		// its members.
		seq := make([]*Member, gen.total)
		for i := range seq {
			seq[i] = members[gen.next()]
		}
		return newRRPicker(seq)
	case gen.total <= tableLimit:
		return newWRRCyclePicker(members, gen)
	}
	p := &wrrLazyPicker{members: members, gen: gen}
	for i := range p.blocks {
		p.blocks[i].seq = make([]atomic.Uint32, wrrBlockLen)
		p.blocks[i].start.Store(wrrNoBlock)
	}
	p.build(0) // the first pick computes the next, as every block's first does
	return p
}

// wrrCyclePicker walks a cycle of at most wrrTableLimit picks that it
// computes a block at a time and keeps. A block is written once, under mu,
// before its ready flag is set, so a pick that sees the flag reads the
// block without a lock.
type wrrCyclePicker struct {
	seq     []*Member     // the cycle; block b is seq[b·wrrBlockLen:]
	ready   []atomic.Bool // block b of seq is written
	n       uint32        // len(seq)
	m       uint64        // fastmod multiplier for n
	_       cacheLinePad
	next    atomic.Uint32 // wraps every 2^32 picks: one uneven step
	_       cacheLinePad
	mu      sync.Mutex // serializes computing blocks; guards gen and built
	members []*Member
	gen     *smoothWRR // positioned at the end of block built-1
	built   uint32     // blocks computed
}

func newWRRCyclePicker(members []*Member, gen *smoothWRR) *wrrCyclePicker {
	n := uint32(gen.total)
	p := &wrrCyclePicker{
		seq:     make([]*Member, n),
		ready:   make([]atomic.Bool, (n+wrrBlockLen-1)/wrrBlockLen),
		n:       n,
		m:       fastmodM(n),
		members: members,
		gen:     gen,
	}
	p.fillTo(0)
	p.next.Store(rand.Uint32N(wrrBlockLen))
	return p
}

func (p *wrrCyclePicker) Pick(Key) *Member {
	i := fastmod(p.next.Add(1)-1, p.m, p.n)
	b := i / wrrBlockLen
	if !p.ready[b].Load() {
		p.fillTo(b)
	} else if i%wrrBlockLen == 0 && b+1 < uint32(len(p.ready)) && !p.ready[b+1].Load() {
		p.fillTo(b + 1)
	}
	return p.seq[i]
}

// fillTo computes the blocks up to block b.
func (p *wrrCyclePicker) fillTo(b uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ; p.built <= b; p.built++ {
		lo := p.built * wrrBlockLen
		for i := lo; i < min(lo+wrrBlockLen, p.n); i++ {
			p.seq[i] = p.members[p.gen.next()]
		}
		p.ready[p.built].Store(true)
	}
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
// step at a time, in O(log² d) amortized per step for d distinct weights
// rather than nginx's O(n), so that a cycle over thousands of members can
// be walked without being stored.
//
// Before step s (1-based within the cycle) member i's credit is
// s·w[i] − total·k[i], where k[i] counts its picks so far: a line in s
// with slope w[i] and intercept −total·k[i]. A step picks the highest line
// at s (the lowest index on a tie) and lowers its intercept by total.
// Members of equal weight have parallel lines, so among them the one with
// the fewest picks, then the lowest index, is the highest: they take
// turns in index order, and one leaf per weight (a class) stands for them
// all. A kinetic tournament tree over those leaves keeps the highest line:
// each node holds its subtree's winner at the current step and the first
// step at which any comparison below it may change (melt); advancing
// recomputes only melted nodes, and a pick recomputes the picked leaf's
// path. After total steps every member has been picked w[i] times, every
// credit is zero again, and the cycle restarts.
//
// The tree starts with the heaviest classes only and grows as the cycle
// goes on (see grow), so that a build costs the steps it takes rather than
// a tree over every weight.
type smoothWRR struct {
	nodes   []swNode  // inner nodes from 1, then the leaf of class c at len(nodes)/2+c; room for all
	classes []swClass // one per weight, heaviest first; the first len(nodes)/2 are in the tree
	order   []int32   // member indices by weight, heaviest first, then index
	weights []int     // the members' weights
	g       int       // the weights' gcd
	total   int64     // sum of the weights over their gcd: the cycle length
	s       int64     // steps taken in this cycle
	exact   int64     // the last step of a cycle the tree decides alone
}

// swClass is the members of one weight, order[lo:hi], which take turns.
type swClass struct {
	lo, hi int32
	turn   int32 // position in order of the next to be picked
}

// swNode is a node of the tournament tree, holding a copy of its winner's
// line so that a comparison reads only the two children, which share a
// cache line. It is 24 bytes: the tree has a leaf per weight, and a build
// allocates room for all of it.
type swNode struct {
	melt int64 // the step at which a comparison in the subtree may change
	w    int32 // the winner's slope: its weight over the gcd
	k    int32 // the winner's picks this cycle, its class's completed turns: its intercept is −total·k
	win  int32 // the winning member
	cls  int32 // the winner's class
}

const never = math.MaxInt64

// newSmoothWRR returns the generator at the start of the cycle over
// weights (1–MaxWeight each, kept by the generator), with a tree that
// decides at least the first steps steps (≥ 1) without growing.
func newSmoothWRR(weights []int, steps int64) *smoothWRR {
	g := 0
	for _, w := range weights {
		if g = gcd(g, w); g == 1 {
			break // as it is after a few unequal weights
		}
	}
	sw := &smoothWRR{order: sortByWeight(weights), weights: weights, g: g}
	for _, w := range weights {
		sw.total += int64(w / g)
	}
	d := 0
	for lo := 0; lo < len(sw.order); lo = sw.classEnd(lo) {
		d++
	}
	sw.classes = make([]swClass, 0, d)
	for lo := 0; lo < len(sw.order); {
		hi := sw.classEnd(lo)
		sw.classes = append(sw.classes, swClass{lo: int32(lo), hi: int32(hi), turn: int32(lo)})
		lo = hi
	}
	// Room for the whole tree now, so that growing it, which a pick may
	// do, allocates nothing; the memory is only zeroed, never scanned.
	sw.nodes = make([]swNode, 0, 2*d)
	sw.grow(1, steps)
	return sw
}

// classEnd returns the end in order of the class that starts at lo.
func (sw *smoothWRR) classEnd(lo int) int {
	hi, w := lo+1, sw.weights[sw.order[lo]]
	for hi < len(sw.order) && sw.weights[sw.order[hi]] == w {
		hi++
	}
	return hi
}

// grow adds the heaviest classes left out to the tree until it holds at
// least m members, or all, and rebuilds the tree for step s, the next.
//
// A tree over the heaviest classes, m members, decides the first m steps
// of every cycle alone: before step s ≤ m at most s−1 picks were taken, so
// one of its members is still unpicked, with credit s·w ≥ s·(its lightest
// weight), more than s·w' for any lighter member left out, whose credit is
// at most that. The members left out are therefore never picked before
// step m+1, and join with zero credit taken back: a fresh leaf.
func (sw *smoothWRR) grow(s, m int64) {
	old := len(sw.nodes) / 2
	d := max(old, 1)
	for d < len(sw.classes) && int64(sw.classes[d-1].hi) < m {
		d++
	}
	sw.nodes = sw.nodes[:2*d]
	copy(sw.nodes[d:], sw.nodes[old:2*old]) // the classes already in keep their lines
	for c := old; c < d; c++ {
		win := sw.order[sw.classes[c].lo]
		sw.nodes[d+c] = swNode{w: int32(sw.weights[win] / sw.g), win: win, cls: int32(c), melt: never}
	}
	sw.exact = int64(sw.classes[d-1].hi)
	if d == len(sw.classes) {
		sw.exact = never
	}
	sw.combineAll(s)
}

// restart begins a new cycle: every credit zero.
func (sw *smoothWRR) restart() {
	sw.s = 0
	d := len(sw.nodes) / 2
	for c := range sw.classes[:d] {
		cl := &sw.classes[c]
		cl.turn = cl.lo
		n := &sw.nodes[d+c]
		n.win, n.k = sw.order[cl.lo], 0
	}
	sw.combineAll(1)
}

// combineAll recomputes every inner node for step s from the leaves.
func (sw *smoothWRR) combineAll(s int64) {
	for node := len(sw.nodes)/2 - 1; node >= 1; node-- {
		sw.combine(node, s)
	}
}

// next takes one step and returns the member picked.
func (sw *smoothWRR) next() uint32 {
	s := sw.s + 1
	if s > sw.exact {
		sw.grow(s, 2*sw.exact)
	}
	sw.advance(1, s)
	best, c := sw.nodes[1].win, sw.nodes[1].cls
	cl, leaf := &sw.classes[c], len(sw.nodes)/2+int(c)
	n := &sw.nodes[leaf]
	if cl.turn++; cl.turn == cl.hi {
		cl.turn, n.k = cl.lo, n.k+1
	}
	n.win = sw.order[cl.turn]
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
	x, y := &sw.nodes[2*node], &sw.nodes[2*node+1]
	melt := min(x.melt, y.melt)
	vx, vy := s*int64(x.w)-sw.total*int64(x.k), s*int64(y.w)-sw.total*int64(y.k)
	if vy > vx || vy == vx && y.win < x.win {
		x, y = y, x
	}
	// x wins at s; y, if steeper, overtakes at the first s' with
	// (y.w−x.w)s' > total·(y.k−x.k), or ≥ if y wins ties.
	if dw := int64(y.w - x.w); dw > 0 {
		d := sw.total * int64(y.k-x.k)
		if y.win < x.win {
			melt = min(melt, (d+dw-1)/dw)
		} else {
			melt = min(melt, d/dw+1)
		}
	}
	n := &sw.nodes[node]
	n.w, n.k, n.win, n.cls, n.melt = x.w, x.k, x.win, x.cls, melt
}

// sortByWeight returns the member indices ordered by weight (1–65535),
// heaviest first, then by index: a stable radix sort on the bytes of
// MaxWeight−weight, one pass counting both, one placing by each, O(n)
// where a comparison sort of 10,000 members costs a millisecond of a
// build.
func sortByWeight(weights []int) []int32 {
	var start [2][257]int // start[b][d+1] counts digit d of byte b, then start[b][d] is where d begins
	for _, w := range weights {
		k := MaxWeight - w
		start[0][k&0xff+1]++
		start[1][k>>8&0xff+1]++
	}
	for b := range start {
		for d := 1; d < len(start[b]); d++ {
			start[b][d] += start[b][d-1]
		}
	}
	low, order := make([]int32, len(weights)), make([]int32, len(weights))
	for i, w := range weights {
		d := (MaxWeight - w) & 0xff
		low[start[0][d]] = int32(i)
		start[0][d]++
	}
	for _, i := range low {
		d := (MaxWeight - weights[i]) >> 8 & 0xff
		order[start[1][d]] = i
		start[1][d]++
	}
	return order
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
