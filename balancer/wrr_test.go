package balancer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// nginxWRR is nginx's smooth weighted round robin as nginx writes it
// (ngx_http_upstream_get_peer), on the weights as given: every step adds
// each weight to its current credit, picks the largest credit, the first
// on ties, and takes the total back from it.
type nginxWRR struct {
	weight, current []int64
	total           int64
}

func newNginxWRR(weights []int) *nginxWRR {
	r := &nginxWRR{weight: make([]int64, len(weights)), current: make([]int64, len(weights))}
	for i, w := range weights {
		r.weight[i] = int64(w)
		r.total += int64(w)
	}
	return r
}

func (r *nginxWRR) next() uint32 {
	best := -1
	for i, w := range r.weight {
		r.current[i] += w
		if best < 0 || r.current[i] > r.current[best] {
			best = i
		}
	}
	r.current[best] -= r.total
	return uint32(best)
}

// cycle returns one cycle of the generator's sequence.
func cycle(weights []int) []uint32 {
	sw := newSmoothWRR(weights, 1)
	seq := make([]uint32, sw.total)
	sw.fill(seq)
	return seq
}

func seqString(seq []uint32) string {
	var b strings.Builder
	for _, i := range seq {
		b.WriteByte('a' + byte(i))
	}
	return b.String()
}

func TestSmoothWRRCycle(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		{"5:1:1 as nginx", []int{5, 1, 1}, "aabacaa"},
		{"equal", []int{100, 100, 100}, "abc"},
		{"gcd reduced", []int{20, 40}, "bab"},
		{"4:3:2:1", []int{4, 3, 2, 1}, "abcabdacba"},
		{"ties break in member order", []int{1, 2, 2, 1}, "bcadbc"},
		{"one", []int{7}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqString(cycle(tt.weights)); got != tt.want {
				t.Errorf("cycle(%v) = %s, want %s", tt.weights, got, tt.want)
			}
		})
	}
}

// checkSameAsNginx compares steps picks of the generator with the
// reference: with a tree that starts with the heaviest weight alone and
// grows at every power of two, and with one that starts as a picker's.
func checkSameAsNginx(t *testing.T, weights []int, steps int) {
	t.Helper()
	for _, first := range []int64{1, 2 * wrrBlockLen} {
		sw, ref := newSmoothWRR(weights, first), newNginxWRR(weights)
		for step := range steps {
			if got, want := sw.next(), ref.next(); got != want {
				t.Fatalf("weights %v, tree first for %d steps: pick(step %d) = %d, want %d (nginx)", weights, first, step, got, want)
			}
		}
	}
}

// The generator must pick exactly as nginx does, ties included, over
// several whole cycles and across the restart of each.
func TestSmoothWRRSameAsNginx(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		members, maxWeight int
	}{
		{2, 2}, {3, 3}, {5, 4}, {8, 2}, {16, 5}, {7, 100}, {33, 100}, {50, 10},
		{4, 65535}, {20, 65535}, {100, 65535}, {1000, 3},
	} {
		for seed := range 8 {
			weights := make([]int, c.members)
			for i := range weights {
				weights[i] = 1 + r.IntN(c.maxWeight)
			}
			if seed == 0 { // all equal but the last: long runs of ties
				for i := range weights {
					weights[i] = c.maxWeight
				}
				weights[len(weights)-1] = 1
			}
			t.Run(fmt.Sprintf("n=%d,max=%d,seed=%d", c.members, c.maxWeight, seed), func(t *testing.T) {
				// Three whole cycles, or as much of the first as the
				// reference's O(n) steps do in about 3 million operations.
				total := newSmoothWRR(weights, 1).total
				checkSameAsNginx(t, weights, int(min(3*total, 3e6/int64(c.members))))
			})
		}
	}
	t.Run("10000 distinct weights up to 65535", func(t *testing.T) {
		checkSameAsNginx(t, distinctWeights(10000, 65535), 3000)
	})
}

// distinctWeights returns n distinct weights in 1–limit, shuffled.
func distinctWeights(n, limit int) []int {
	r := rand.New(rand.NewPCG(3, 4))
	w := r.Perm(limit)[:n]
	for i := range w {
		w[i]++
	}
	return w
}

// checkSmooth asserts that every member gets exactly its weight's share per
// cycle and that at every prefix its count is within slack of the ideal,
// which rules out bursts.
func checkSmooth(t *testing.T, weights []int, seq []uint32, slack float64) {
	t.Helper()
	g, total := 0, 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	for _, w := range weights {
		total += w / g
	}
	if len(seq) != total {
		t.Fatalf("cycle length %d, want %d", len(seq), total)
	}
	count := make([]int, len(weights))
	for step, i := range seq {
		count[i]++
		for j, w := range weights {
			ideal := float64(step+1) * float64(w/g) / float64(total)
			if d := float64(count[j]) - ideal; d > slack || d < -slack {
				t.Fatalf("after %d picks member %d (weight %d) has %d, ideal %.2f (±%.0f)", step+1, j, w, count[j], ideal, slack)
			}
		}
	}
	for j, w := range weights {
		if count[j] != w/g {
			t.Errorf("member %d (weight %d) picked %d times per cycle, want %d", j, w, count[j], w/g)
		}
	}
}

func TestSmoothness(t *testing.T) {
	// nginx's algorithm keeps every member within one pick of its ideal.
	for _, w := range [][]int{{5, 1, 1}, {1, 2, 3}, {100, 99, 1}, {37, 53, 71, 97, 2}} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			checkSmooth(t, w, cycle(w), 1)
		})
	}
}

// testMembers returns n members of a group, to build pickers over with
// weights of the test's choosing.
func testMembers(t *testing.T, n int) []*Member {
	t.Helper()
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{ID: fmt.Sprintf("m%05d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 1000+i), Weight: DefaultWeight}
	}
	g, err := New(Config{}, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return g.Members()
}

func indexOf(members []*Member) map[*Member]uint32 {
	idx := make(map[*Member]uint32, len(members))
	for i, m := range members {
		idx[m] = uint32(i)
	}
	return idx
}

// The lazy picker walks the same sequence as nginx across block
// boundaries and cycle restarts.
func TestWRRLazyPickerSameAsNginx(t *testing.T) {
	for _, weights := range [][]int{
		{65535, 65534, 3},          // a cycle of 131072: 32 blocks, then restart
		{7, 5, 3, 1},               // a cycle of 16, inside one block
		distinctWeights(300, 1000), // a cycle that ends mid-block
	} {
		t.Run(fmt.Sprintf("%d members", len(weights)), func(t *testing.T) {
			members := testMembers(t, len(weights))
			p := newWRRPicker(members, weights, 0)
			if _, ok := p.(*wrrLazyPicker); !ok {
				t.Fatalf("newWRRPicker(tableLimit 0) = %T, want *wrrLazyPicker", p)
			}
			idx, ref := indexOf(members), newNginxWRR(weights)
			steps := int(min(3*ref.total, 500_000))
			for step := range steps {
				if got, want := idx[p.Pick(Key{})], ref.next(); got != want {
					t.Fatalf("Pick(step %d) = member %d, want %d (nginx)", step, got, want)
				}
			}
		})
	}
}

// The table picker and the lazy picker are two renderings of one
// sequence: the table one starts at a random point of it.
func TestWRRTablePickerIsARotation(t *testing.T) {
	weights := []int{9, 4, 4, 2, 1}
	members := testMembers(t, len(weights))
	p := newWRRPicker(members, weights, wrrTableLimit)
	if _, ok := p.(*rrPicker); !ok {
		t.Fatalf("newWRRPicker = %T, want the stored cycle walked by *rrPicker", p)
	}
	idx := indexOf(members)
	got := make([]uint32, 2*20)
	for i := range got {
		got[i] = idx[p.Pick(Key{})]
	}
	want := seqString(cycle(weights))
	if s := seqString(got); !strings.Contains(want+want+want, s) {
		t.Errorf("picks %s are not a stretch of the cycle %s repeated", s, want)
	}
}

// Many goroutines picking at once still see the sequence's proportions;
// run with -race.
func TestWRRLazyPickerConcurrent(t *testing.T) {
	weights := distinctWeights(200, 300) // a cycle of ~30,000 picks: several blocks
	members := testMembers(t, len(weights))
	p := newWRRPicker(members, weights, 0)
	idx := indexOf(members)
	sw := newSmoothWRR(weights, 1)
	const workers, cycles = 4, 2
	perWorker := int(sw.total) * cycles / workers
	counts := make([][]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		counts[w] = make([]int, len(members))
		wg.Go(func() {
			for range perWorker {
				counts[w][idx[p.Pick(Key{})]]++
			}
		})
	}
	wg.Wait()
	g := gcd(0, weights[0])
	for _, w := range weights {
		g = gcd(g, w)
	}
	for i, w := range weights {
		got := 0
		for _, c := range counts {
			got += c[i]
		}
		// Exactly cycles × weight, unless a goroutine stalled for a whole
		// block and lost its place: allow one pick of slack per worker.
		if want := cycles * w / g; got < want-workers || got > want+workers {
			t.Errorf("member %d (weight %d) picked %d times in %d cycles, want %d", i, w, got, cycles, want)
		}
	}
}

func TestWRRPickAllocs(t *testing.T) {
	members := testMembers(t, 300)
	for _, limit := range []int64{wrrTableLimit, 0} {
		p := newWRRPicker(members, distinctWeights(300, 1000), limit)
		// 10,000 picks cross nine block boundaries of the lazy picker.
		if a := testing.AllocsPerRun(10_000, func() { p.Pick(Key{}) }); a != 0 {
			t.Errorf("%T.Pick allocates %v times a pick", p, a)
		}
	}
}

// Growing the tournament tree, which the pick that computes a block may
// do, allocates nothing: the build made room for all of it.
func TestWRRPickAllocsWhileTreeGrows(t *testing.T) {
	weights := distinctWeights(5000, 65535) // the first block's tree holds 1024 of them
	members := testMembers(t, len(weights))
	// The fewest of three fresh pickers': the runtime may allocate now and
	// then while they run, a picker that allocates does so every time.
	fewest := uint64(math.MaxUint64)
	for range 3 {
		p := newWRRPicker(members, weights, 0)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 8 * wrrBlockLen { // growing at steps 1025, 2049 and 4097
			p.Pick(Key{})
		}
		runtime.ReadMemStats(&after)
		fewest = min(fewest, after.Mallocs-before.Mallocs)
	}
	if fewest != 0 {
		t.Errorf("%d picks that grow the tree allocate %d times", 8*wrrBlockLen, fewest)
	}
}

// A build at 10,000 members of distinct weights costs the members, their
// order and the tree's room: under 1 MB, where a tree padded to a power
// of two and built whole took 2.2 MB.
func TestWRRBuildMemory(t *testing.T) {
	weights := distinctWeights(10000, 65535)
	members := testMembers(t, len(weights))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	newWRRPicker(members, weights, wrrTableLimit)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("a build over %d distinct weights allocates %d bytes, want ≤ 1 MiB", len(weights), n)
	}
}

// BenchmarkWRRLazy measures the lazy picker at 10,000 members of distinct
// weights up to 65535, building blocks included; and one build of it.
func BenchmarkWRRLazy(b *testing.B) {
	weights := distinctWeights(10000, 65535)
	bs := make([]Backend, len(weights))
	for i := range bs {
		bs[i] = Backend{ID: fmt.Sprintf("m%05d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 1000+i), Weight: DefaultWeight}
	}
	g, err := New(Config{}, bs...)
	if err != nil {
		b.Fatal(err)
	}
	members := g.Members()
	b.Run("pick", func(b *testing.B) {
		p := newWRRPicker(members, weights, wrrTableLimit)
		b.ReportAllocs()
		for b.Loop() {
			p.Pick(Key{})
		}
	})
	b.Run("step", func(b *testing.B) {
		sw := newSmoothWRR(weights, 1)
		for b.Loop() {
			sw.next()
		}
	})
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			newWRRPicker(members, weights, wrrTableLimit)
		}
	})
}

// A cycle longer than a block and at most wrrTableLimit is computed by
// picks, a block at a time, and walked from a random point of its first
// block: twice round it is nginx's cycle rotated, and every member has its
// exact share, even with goroutines racing to compute the blocks (run with
// -race).
func TestWRRCyclePicker(t *testing.T) {
	weights := distinctWeights(200, 300)
	members := testMembers(t, len(weights))
	p := newWRRPicker(members, weights, wrrTableLimit)
	if _, ok := p.(*wrrCyclePicker); !ok {
		t.Fatalf("newWRRPicker = %T, want *wrrCyclePicker", p)
	}
	idx, want := indexOf(members), cycle(weights)
	total := len(want)
	const workers = 4
	got := make([][]uint32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range total / 2 {
				got[w] = append(got[w], idx[p.Pick(Key{})])
			}
		})
	}
	wg.Wait()
	counts := make([]int, len(members))
	for _, g := range got {
		for _, i := range g {
			counts[i]++
		}
	}
	share := make([]int, len(members))
	for _, j := range want {
		share[j]++
	}
	for i := range weights {
		// Two whole cycles, whatever the start: each member's share twice.
		if counts[i] != 2*share[i] {
			t.Errorf("member %d picked %d times in two cycles, want %d", i, counts[i], 2*share[i])
		}
	}
	seq := make([]uint32, total+wrrBlockLen)
	for i := range seq {
		seq[i] = idx[p.Pick(Key{})]
	}
	found := false
	for r := range total {
		ok := true
		for k := range seq {
			if seq[k] != want[(r+k)%total] {
				ok = false
				break
			}
		}
		if ok {
			found = true
			break
		}
	}
	if !found {
		t.Error("picks are not nginx's cycle rotated")
	}
}

// BenchmarkWRRChange is BenchmarkGroupChange for wrr with weights spread
// over 1–65535 (about as many distinct weights as members), the case
// where the tournament tree has a leaf per member: each op sets a random
// member to a new random weight.
func BenchmarkWRRChange(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			bs := make([]Backend, n)
			for i := range bs {
				bs[i] = Backend{ID: fmt.Sprintf("backend-%05d", i), Addr: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1), Weight: 1 + r.IntN(65535)}
			}
			g, err := New(Config{Scheduler: WeightedRoundRobin()}, bs...)
			if err != nil {
				b.Fatal(err)
			}
			ids := g.IDs()
			runtime.GC() // the building's garbage is not a change's cost
			b.ReportAllocs()
			for b.Loop() {
				if err := g.SetWeight(ids[r.IntN(len(ids))], 1+r.IntN(65535)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
