package balancertest_test

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/balancer/balancertest"
)

// weightedRandom is a user-written scheduler: each pick draws a member at
// random in proportion to its weight.
type weightedRandom struct{}

func (weightedRandom) Name() string { return "weighted-random" }

func (weightedRandom) Build(members []*balancer.Member) (balancer.Picker, error) {
	p := &randomPicker{members: append([]*balancer.Member(nil), members...)}
	for _, m := range members {
		p.total += m.Weight()
		p.cumulative = append(p.cumulative, p.total)
	}
	return p, nil
}

type randomPicker struct {
	members    []*balancer.Member
	cumulative []int
	total      int
}

func (p *randomPicker) Pick(balancer.Key) *balancer.Member {
	r := rand.IntN(p.total)
	return p.members[sort.SearchInts(p.cumulative, r+1)]
}

// Check a custom scheduler with the kit. In a test, call
// balancertest.TestScheduler(t, newScheduler, opts) instead to get one
// subtest per check.
func Example() {
	newScheduler := func() balancer.Scheduler { return weightedRandom{} }
	if err := balancertest.Check(newScheduler, balancertest.Options{Tolerance: 0.1}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("weighted-random: conforms")
	// Output: weighted-random: conforms
}
