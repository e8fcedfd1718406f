package balancer

import (
	"math/bits"
	"math/rand/v2"
)

// LeastConnections returns the wlc scheduler: weighted least connections
// by the power of two choices. Each pick draws two members at random in
// proportion to their weights and takes the one with fewer active
// connections per unit of weight (Member.Active / Member.Weight). It
// balances on the Begin and End calls that callers make; a member nobody
// reports on looks idle.
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
	p := &wlcPicker{members: append([]*Member(nil), members...)}
	p.prob, p.alias = aliasTable(members)
	return p, nil
}

type wlcPicker struct {
	members []*Member
	prob    []uint32 // Vose alias method, probabilities scaled to 2^32
	alias   []uint32
}

func (p *wlcPicker) Pick(Key) *Member {
	a := p.members[p.sample(rand.Uint64())]
	if len(p.members) == 1 {
		return a
	}
	b := p.members[p.sample(rand.Uint64())]
	// a.Active/a.weight <= b.Active/b.weight, cross-multiplied.
	if a.Active()*int64(b.weight) <= b.Active()*int64(a.weight) {
		return a
	}
	return b
}

// sample draws an index in proportion to weight from 64 random bits: the
// high half chooses a column, the low half the coin.
func (p *wlcPicker) sample(r uint64) uint32 {
	col, _ := bits.Mul32(uint32(r>>32), uint32(len(p.prob)))
	if uint32(r) < p.prob[col] {
		return col
	}
	return p.alias[col]
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
