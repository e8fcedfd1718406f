package balancertest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// Options states what a scheduler promises, so the kit checks exactly
// that. The zero value is a weighted, non-consistent scheduler checked
// with the default tolerance and timeout.
type Options struct {
	// IgnoresWeights says the scheduler spreads picks evenly over the
	// eligible members whatever their weights, as round robin does.
	IgnoresWeights bool
	// Consistent says equal keys pick equal members and membership
	// changes move few keys, as consistent hashing does.
	Consistent bool
	// Tolerance is the largest allowed difference between a member's
	// share of picks and its expected share, relative to the expected
	// share: 0.05 lets a member due 10% of the picks get 9.5–10.5%. If
	// zero, 0.05 is used (with Picks large enough that random keys stay
	// well inside it).
	Tolerance float64
	// Picks is the number of picks of the weights check. If zero, 60000.
	Picks int
	// Timeout bounds each check, to catch a deadlock rather than to time
	// anything. If zero, 60s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Tolerance == 0 {
		o.Tolerance = 0.05
	}
	if o.Picks == 0 {
		o.Picks = 60000
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	return o
}

// A check returns the problems it found.
type check struct {
	name string
	run  func(newScheduler func() balancer.Scheduler, o Options) []string
	when func(o Options) bool
}

var checks = []check{
	{name: "contract", run: checkContract},
	{name: "empty", run: checkEmpty},
	{name: "weights", run: checkWeights},
	{name: "drain", run: checkDrain},
	{name: "concurrent", run: checkConcurrent},
	{name: "consistent", run: checkConsistent, when: func(o Options) bool { return o.Consistent }},
}

// TestScheduler runs the conformance checks on schedulers made by
// newScheduler, one subtest per check. newScheduler is called once per
// group the kit builds and must return a fresh, independent scheduler.
func TestScheduler(t *testing.T, newScheduler func() balancer.Scheduler, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	for _, c := range checks {
		if c.when != nil && !c.when(opts) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			// A helper too, so that a failure is reported at the
			// caller's line rather than here.
			t.Helper()
			if problems := runBounded(c, newScheduler, opts); len(problems) > 0 {
				t.Errorf("%s: %d problem(s):\n\t%s", c.name, len(problems), strings.Join(problems, "\n\t"))
			}
		})
	}
}

// Check runs the same checks as TestScheduler and returns every problem
// found, joined into one error, or nil.
func Check(newScheduler func() balancer.Scheduler, opts Options) error {
	opts = opts.withDefaults()
	var errs []error
	for _, c := range checks {
		if c.when != nil && !c.when(opts) {
			continue
		}
		for _, p := range runBounded(c, newScheduler, opts) {
			errs = append(errs, fmt.Errorf("%s: %s", c.name, p))
		}
	}
	return errors.Join(errs...)
}

// runBounded runs c with a timeout; a check that does not finish in time
// is reported and abandoned.
func runBounded(c check, newScheduler func() balancer.Scheduler, o Options) (problems []string) {
	done := make(chan []string, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- []string{panicProblem(r)}
			}
		}()
		done <- c.run(newScheduler, o)
	}()
	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	select {
	case p := <-done:
		return p
	case <-timer.C:
		return []string{fmt.Sprintf("did not finish within %v (deadlock or very slow Pick/Build?)", o.Timeout)}
	}
}

// backends returns n members b00, b01, … with the given weights (cycled).
func backends(n int, weights ...int) []balancer.Backend {
	bs := make([]balancer.Backend, n)
	for i := range bs {
		bs[i] = balancer.Backend{
			ID:     fmt.Sprintf("b%02d", i),
			Addr:   fmt.Sprintf("127.0.0.1:%d", 10000+i),
			Weight: weights[i%len(weights)],
		}
	}
	return bs
}

// keys returns n distinct pick keys from a fixed seed: IPv4 and IPv6
// sources, varied ports, and an 8-byte connection ID.
func keys(n int, seed uint64) []balancer.Key {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dst := netip.MustParseAddrPort("127.0.0.1:443")
	ks := make([]balancer.Key, n)
	for i := range ks {
		var src netip.Addr
		if i%4 == 3 {
			var a [16]byte
			for j := range a {
				a[j] = byte(r.Uint32())
			}
			a[0] = 0x20
			src = netip.AddrFrom16(a)
		} else {
			src = netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		}
		id := make([]byte, 8)
		for j := range id {
			id[j] = byte(r.Uint32())
		}
		ks[i] = balancer.Key{
			Src:     netip.AddrPortFrom(src, uint16(1024+r.IntN(60000))),
			Dst:     dst,
			Hash:    balancer.HashQUICConnID(id),
			HasHash: true,
		}
	}
	return ks
}

func newGroup(newScheduler func() balancer.Scheduler, bs ...balancer.Backend) (*balancer.Group, error) {
	return balancer.New(balancer.Config{Scheduler: newScheduler()}, bs...)
}

// checkContract builds pickers directly and checks that they return only
// the members they were built with.
func checkContract(newScheduler func() balancer.Scheduler, _ Options) (problems []string) {
	s := newScheduler()
	if s == nil {
		return []string{"newScheduler returned nil"}
	}
	if s.Name() == "" {
		problems = append(problems, "Name() is empty")
	}
	g, err := newGroup(newScheduler, backends(5, 10, 20, 30, 40, 50)...)
	if err != nil {
		return append(problems, fmt.Sprintf("New with 5 members: %v", err))
	}
	members := g.Members()
	for _, given := range [][]*balancer.Member{members[:1], members[1:3], members[1:4]} {
		problems = append(problems, checkPicker(newScheduler, given)...)
	}
	return problems
}

// checkPicker builds a picker over given directly and checks that it
// returns only those members, and never nil: the Picker contract allows
// nil only when the picker cannot choose, and these are idle members of
// weight > 0.
func checkPicker(newScheduler func() balancer.Scheduler, given []*balancer.Member) (problems []string) {
	p, err := newScheduler().Build(given)
	if err != nil {
		return []string{fmt.Sprintf("Build(%d members): %v", len(given), err)}
	}
	if p == nil {
		return []string{fmt.Sprintf("Build(%d members) returned a nil Picker and no error", len(given))}
	}
	for i, k := range keys(3000, 1) {
		m := p.Pick(k)
		if m == nil {
			return []string{fmt.Sprintf("Pick(step %d) = nil from a picker of %d idle members", i, len(given))}
		}
		if !slices.Contains(given, m) {
			return []string{fmt.Sprintf("Pick(step %d) = %s, not one of the %d members given to Build", i, m.ID(), len(given))}
		}
	}
	return nil
}

func checkEmpty(newScheduler func() balancer.Scheduler, _ Options) (problems []string) {
	k := keys(1, 2)[0]
	expectNone := func(what string, g *balancer.Group) {
		for i := range 100 {
			if p, err := g.Pick(k); !errors.Is(err, balancer.ErrNoBackend) {
				p.Done(balancer.DoneInfo{})
				problems = append(problems, fmt.Sprintf("%s: Pick(step %d) = %v, %v; want ErrNoBackend", what, i, id(p.Member), err))
				return
			}
		}
	}
	g, err := newGroup(newScheduler)
	if err != nil {
		return []string{fmt.Sprintf("New with no members: %v", err)}
	}
	expectNone("no members", g)

	bs := backends(3, 100)
	for i := range bs {
		bs[i].State = balancer.Drain
	}
	g, err = newGroup(newScheduler, bs...)
	if err != nil {
		return append(problems, fmt.Sprintf("New with draining members: %v", err))
	}
	expectNone("only draining members", g)

	g, err = newGroup(newScheduler, backends(3, 100)...)
	if err != nil {
		return append(problems, fmt.Sprintf("New with 3 members: %v", err))
	}
	for _, m := range g.Members() {
		if err := g.SetHealthy(m.ID(), false); err != nil {
			problems = append(problems, fmt.Sprintf("SetHealthy(%s, false): %v", m.ID(), err))
		}
	}
	expectNone("only unhealthy members", g)

	g, err = newGroup(newScheduler, backends(1, 100)...)
	if err != nil {
		return append(problems, fmt.Sprintf("New with 1 member: %v", err))
	}
	if err := g.SetHealthy("b00", false); err != nil {
		return append(problems, fmt.Sprintf("SetHealthy(b00, false): %v", err))
	}
	expectNone("one unhealthy member", g)
	return problems
}

func checkWeights(newScheduler func() balancer.Scheduler, o Options) (problems []string) {
	for _, weights := range [][]int{{100}, {25, 75}, {10, 20, 30, 40, 100}} {
		problems = append(problems, checkShares(newScheduler, o, weights)...)
	}
	return problems
}

// checkShares checks each member's share of o.Picks picks in a group with
// the given weights, within o.Tolerance relative to the expected share.
func checkShares(newScheduler func() balancer.Scheduler, o Options, weights []int) (problems []string) {
	bs := backends(len(weights), weights...)
	g, err := newGroup(newScheduler, bs...)
	if err != nil {
		return []string{fmt.Sprintf("New(weights %v): %v", weights, err)}
	}
	counts := map[string]int{}
	var picked []balancer.Picked
	for i, k := range keys(o.Picks, 3) {
		p, err := g.Pick(k)
		if err != nil {
			return []string{fmt.Sprintf("weights %v: Pick(step %d): %v", weights, i, err)}
		}
		// Keep the pick open, as a listener keeps a connection;
		// least-connections schedulers balance on it.
		picked = append(picked, p)
		counts[p.Member.ID()]++
	}
	for _, p := range picked {
		p.Done(balancer.DoneInfo{})
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	for i, b := range bs {
		want := float64(weights[i]) / float64(total)
		if o.IgnoresWeights {
			want = 1 / float64(len(bs))
		}
		got := float64(counts[b.ID]) / float64(o.Picks)
		if math.Abs(got-want) > o.Tolerance*want {
			problems = append(problems, fmt.Sprintf("weights %v: member %s got %.2f%% of %d picks, want %.2f%% ± %.0f%% of it (%.2f–%.2f%%)",
				weights, b.ID, 100*got, o.Picks, 100*want, 100*o.Tolerance, 100*want*(1-o.Tolerance), 100*want*(1+o.Tolerance)))
		}
	}
	return problems
}

func checkDrain(newScheduler func() balancer.Scheduler, _ Options) (problems []string) {
	// Two members, one drained: every pick goes to the other.
	g, err := newGroup(newScheduler, backends(2, 100)...)
	if err != nil {
		return []string{fmt.Sprintf("New with 2 members: %v", err)}
	}
	if err := g.SetState("b00", balancer.Drain); err != nil {
		return []string{fmt.Sprintf("SetState(b00, Drain): %v", err)}
	}
	for i, k := range keys(2000, 4) {
		if m, err := pickDone(g, k); err != nil || m.ID() != "b01" {
			return []string{fmt.Sprintf("2 members, b00 draining: Pick(step %d) = %s, %v; want b01", i, id(m), err)}
		}
	}

	g, err = newGroup(newScheduler, backends(6, 100, 50)...)
	if err != nil {
		return []string{fmt.Sprintf("New: %v", err)}
	}
	if err := g.SetState("b01", balancer.Drain); err != nil {
		return []string{fmt.Sprintf("SetState(b01, Drain): %v", err)}
	}
	if err := g.SetHealthy("b02", false); err != nil {
		return []string{fmt.Sprintf("SetHealthy(b02, false): %v", err)}
	}
	banned := map[string]string{"b01": "draining", "b02": "unhealthy"}
	seen := map[string]bool{}
	for i, k := range keys(20000, 4) {
		if i == 10000 {
			// Change the banned set mid-way: the very next pick
			// must respect it.
			if err := g.SetState("b03", balancer.Maint); err != nil {
				return append(problems, fmt.Sprintf("SetState(b03, Maint): %v", err))
			}
			if err := g.SetHealthy("b02", true); err != nil {
				return append(problems, fmt.Sprintf("SetHealthy(b02, true): %v", err))
			}
			if err := g.SetHealthy("b04", false); err != nil {
				return append(problems, fmt.Sprintf("SetHealthy(b04, false): %v", err))
			}
			banned = map[string]string{"b01": "draining", "b03": "in maintenance", "b04": "unhealthy"}
		}
		m, err := pickDone(g, k)
		if err != nil {
			return append(problems, fmt.Sprintf("Pick(step %d): %v", i, err))
		}
		if why, bad := banned[m.ID()]; bad {
			problems = append(problems, fmt.Sprintf("Pick(step %d) = %s, which is %s", i, m.ID(), why))
			if len(problems) > 10 {
				return problems
			}
		}
		seen[m.ID()] = true
	}
	for _, id := range []string{"b00", "b02", "b05"} {
		if !seen[id] {
			problems = append(problems, fmt.Sprintf("eligible member %s was never picked", id))
		}
	}
	return problems
}

func checkConcurrent(newScheduler func() balancer.Scheduler, _ Options) (problems []string) {
	bs := backends(8, 100, 60, 30)
	g, err := newGroup(newScheduler, bs...)
	if err != nil {
		return []string{fmt.Sprintf("New: %v", err)}
	}
	valid := map[string]bool{}
	for _, b := range bs {
		valid[b.ID] = true
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	report := func(p string) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, p)
		}
	}
	ks := keys(512, 5)
	// Two pickers, each yielding now and then, so that the changer is
	// not starved on a small machine under the race detector.
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				if i%64 == 0 {
					select {
					case <-stop:
						return
					default:
						runtime.Gosched()
					}
				}
				m, err := safePick(g, ks[(i+w*128)%len(ks)])
				switch {
				case errors.Is(err, balancer.ErrNoBackend):
				case err != nil:
					report(fmt.Sprintf("Pick(goroutine %d, step %d): unexpected error %v", w, i, err))
				case !valid[m.ID()]:
					report(fmt.Sprintf("Pick(goroutine %d, step %d) = %s, never a member", w, i, m.ID()))
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(6, 7))
	for i := range 80 {
		b := bs[r.IntN(len(bs))]
		var err error
		switch i % 4 {
		case 0:
			err = g.SetWeight(b.ID, 1+r.IntN(100))
		case 1:
			err = g.SetHealthy(b.ID, r.IntN(3) > 0)
		case 2:
			if err = g.Remove(b.ID); err == nil {
				err = g.Add(b)
			}
		case 3:
			err = g.Replace(bs[:1+r.IntN(len(bs))])
			if err == nil {
				err = g.Replace(bs)
			}
		}
		if err != nil {
			report(fmt.Sprintf("change %d: %v", i, err))
		}
	}
	close(stop)
	wg.Wait()
	return problems
}

func checkConsistent(newScheduler func() balancer.Scheduler, _ Options) (problems []string) {
	const n = 20
	bs := backends(n, 100)
	g, err := newGroup(newScheduler, bs...)
	if err != nil {
		return []string{fmt.Sprintf("New: %v", err)}
	}
	ks := keys(20000, 8)
	before := assign(g, ks)

	// Same keys again, and after a rebuild with the same members.
	if again := assign(g, ks); moved(before, again) != 0 {
		problems = append(problems, fmt.Sprintf("repeating the same keys moved %d of %d", moved(before, again), len(ks)))
	}
	if err := g.Replace(bs); err != nil {
		return append(problems, fmt.Sprintf("Replace: %v", err))
	}
	if again := assign(g, ks); moved(before, again) != 0 {
		problems = append(problems, fmt.Sprintf("a rebuild with the same members moved %d of %d keys", moved(before, again), len(ks)))
	}

	// Removing one of n: its keys must move, about 1/n in all. Maglev
	// moves a little more than the ideal; a modulo hash would move
	// nearly all.
	const limit = 1.5 / n
	if err := g.Remove(bs[7].ID); err != nil {
		return append(problems, fmt.Sprintf("Remove: %v", err))
	}
	after := assign(g, ks)
	if f := float64(moved(before, after)) / float64(len(ks)); f > limit {
		problems = append(problems, fmt.Sprintf("removing 1 of %d members moved %.2f%% of keys, want ≤ %.2f%%", n, 100*f, 100*limit))
	}
	for i := range ks {
		if after[i] == bs[7].ID {
			problems = append(problems, fmt.Sprintf("key %d still picks removed member %s", i, bs[7].ID))
			break
		}
	}

	// Adding it back: about 1/n move again, back to where they were.
	if err := g.Add(bs[7]); err != nil {
		return append(problems, fmt.Sprintf("Add: %v", err))
	}
	back := assign(g, ks)
	if f := float64(moved(after, back)) / float64(len(ks)); f > limit {
		problems = append(problems, fmt.Sprintf("adding 1 member to %d moved %.2f%% of keys, want ≤ %.2f%%", n-1, 100*f, 100*limit))
	}
	return problems
}

// assign records the member ID each key picks ("" for an error).
func assign(g *balancer.Group, ks []balancer.Key) []string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		if m, err := safePick(g, k); err == nil {
			ids[i] = m.ID()
		}
	}
	return ids
}

// safePick is pickDone with a panic turned into an error, for picks on
// goroutines other than the check's own.
func safePick(g *balancer.Group, k balancer.Key) (m *balancer.Member, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, errors.New(panicProblem(r))
		}
	}()
	return pickDone(g, k)
}

// pickDone picks for k and reports the work done at once.
func pickDone(g *balancer.Group, k balancer.Key) (*balancer.Member, error) {
	p, err := g.Pick(k)
	if err != nil {
		return nil, err
	}
	p.Done(balancer.DoneInfo{})
	return p.Member, nil
}

// panicProblem describes a recovered panic with the stack that raised it,
// so that the scheduler's failing line is in the report.
func panicProblem(r any) string {
	return fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
}

func moved(a, b []string) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func id(m *balancer.Member) string {
	if m == nil {
		return "<nil>"
	}
	return m.ID()
}
