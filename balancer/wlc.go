package balancer

import (
	"math/bits"
	"math/rand/v2"
)

// LeastConnections returns the wlc scheduler: weighted least connections
// by the power of two choices. Each pick draws two members at random in
// proportion to their weights and takes the one with fewer outstanding
// connections or requests per unit of weight (Member.Outstanding /
// Member.Weight). It balances on picks not yet Done; a member whose work
// nobody counts looks idle.
//
// Two weighted draws instead of a scan keep a pick O(1) at any group size
// and avoid the herd that a strict "least" causes when many picks see the
// same counts at once. [Mitzenmacher] shows two choices already bring the
// maximum load down exponentially compared with one.
//
// [Mitzenmacher]: https://www.eecs.harvard.edu/~michaelm/postscripts/tpds2001.pdf
func LeastConnections() Scheduler { return wlcScheduler{} }

type wlcScheduler struct{}

func (wlcScheduler) Name() string { return NameWLC }

func (wlcScheduler) Build(members []*Member) (Picker, error) {
	return &wlcPicker{members: append([]*Member(nil), members...), weighted: newWeighted(members)}, nil
}

type wlcPicker struct {
	members []*Member
	weighted
}

func (p *wlcPicker) Pick(Key) *Member {
	a := p.members[p.sample(rand.Uint64())]
	if len(p.members) == 1 {
		return a
	}
	b := p.members[p.sample(rand.Uint64())]
	// a.Outstanding/a.weight <= b.Outstanding/b.weight, cross-multiplied.
	if a.Outstanding()*int64(b.weight) <= b.Outstanding()*int64(a.weight) {
		return a
	}
	return b
}

// weighted draws member indices in proportion to weight by Vose's alias
// method: a draw is one multiplication and one comparison at any group
// size. The power-of-two-choices schedulers (wlc, ewma) draw their pairs
// with it.
type weighted struct {
	prob  []uint32 // probabilities scaled to 2^32
	alias []uint32
}

func newWeighted(members []*Member) weighted {
	prob, alias := aliasTable(members)
	return weighted{prob: prob, alias: alias}
}

// sample draws an index in proportion to weight from 64 random bits: the
// high half chooses a column, the low half the coin.
func (w *weighted) sample(r uint64) uint32 {
	col, _ := bits.Mul32(uint32(r>>32), uint32(len(w.prob)))
	if uint32(r) < w.prob[col] {
		return col
	}
	return w.alias[col]
}

// other draws an index other than i (of n > 1), uniformly, from 64 random
// bits: a pair of distinct members, so that a member is never compared
// with itself, which would hand it the pick whatever its load.
func other(i uint32, n int, r uint64) uint32 {
	k, _ := bits.Mul32(uint32(r), uint32(n-1))
	return (i + 1 + k) % uint32(n)
}

// aliasTable builds Vose's alias tables for sampling members in proportion
// to weight.
func aliasTable(members []*Member) (prob, alias []uint32) {
	n := len(members)
	total := 0
	for _, m := range members {
		total += m.weight
	}
	prob, alias = make([]uint32, n), make([]uint32, n)
	// scaled[i] = weight_i × n / total, kept as integers over total.
	scaled := make([]int, n)
	var small, large []int
	for i, m := range members {
		scaled[i] = m.weight * n
		if scaled[i] < total {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		prob[s] = uint32(uint64(scaled[s]) << 32 / uint64(total))
		alias[s] = uint32(l)
		scaled[l] -= total - scaled[s]
		if scaled[l] < total {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		prob[i] = 1<<32 - 1 // always itself
		alias[i] = uint32(i)
	}
	return prob, alias
}
