package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func members(weights ...int) []*Member {
	ms := make([]*Member, len(weights))
	for i, w := range weights {
		ms[i] = newMember(Backend{ID: fmt.Sprintf("backend-%03d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 8000+i), Weight: w}, new(stats))
		ms[i].healthy = true
	}
	return ms
}

func equal(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = DefaultWeight
	}
	return w
}

func slotCounts(table []uint32, n int) []int {
	c := make([]int, n)
	for _, i := range table {
		c[i]++
	}
	return c
}

func maxOverMean(counts []int) float64 {
	sum, hi := 0, 0
	for _, c := range counts {
		sum += c
		hi = max(hi, c)
	}
	return float64(hi) / (float64(sum) / float64(len(counts)))
}

// fourTuples returns n random IPv4 four-tuple keys from a fixed seed.
func fourTuples(n int) []Key {
	r := rand.New(rand.NewPCG(42, 43))
	dst := netip.MustParseAddrPort("127.0.0.1:80")
	ks := make([]Key, n)
	for i := range ks {
		src := netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		ks[i] = Key{Src: netip.AddrPortFrom(src, uint16(r.Uint32())), Dst: dst}
	}
	return ks
}

func TestMaglevSlotBalance(t *testing.T) {
	table := maglevTable(members(equal(100)...), DefaultTableSize)
	r := maxOverMean(slotCounts(table, 100))
	if r > 1.01 {
		t.Errorf("100 equal members, M=%d: max/mean slots = %.4f, want ≤ 1.01", DefaultTableSize, r)
	}
	t.Logf("100 equal members, M=%d: max/mean slots = %.4f", DefaultTableSize, r)
}

func TestMaglevKeyBalance(t *testing.T) {
	ms := members(equal(100)...)
	p, err := Maglev{By: HashFourTuple}.Build(ms)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, k := range fourTuples(1_000_000) {
		counts[p.Pick(k).ID()]++
	}
	c := make([]int, 0, len(counts))
	for _, m := range ms {
		c = append(c, counts[m.ID()])
	}
	r := maxOverMean(c)
	if r > 1.05 {
		t.Errorf("1e6 four-tuple keys over 100 members: max/mean = %.4f, want ≤ 1.05", r)
	}
	t.Logf("1e6 four-tuple keys over 100 members: max/mean = %.4f", r)
}

// disruption returns the slots that change owner when member removed of n
// equal members leaves a table of size m, as a multiple of the ideal m/n.
func disruption(n, m, removed int) float64 {
	ms := members(equal(n)...)
	before := maglevTable(ms, m)
	rest := slices.Delete(slices.Clone(ms), removed, removed+1)
	after := maglevTable(rest, m)
	moved := 0
	for s := range before {
		if ms[before[s]] != rest[after[s]] {
			moved++
		}
	}
	return float64(moved) / (float64(m) / float64(n))
}

// Maglev moves a little more than the removed member's own keys, because
// the end of the fill cascades; the excess shrinks as M/N grows. Our
// target is ≤ 1.2 × ideal at M = 65537, which Maglev does not reach there
// (≈ 1.55 ×); it does at M = 655373 (≈ 1.14 ×). Both are pinned here so
// that a regression in either shows.
func TestMaglevDisruption(t *testing.T) {
	tests := []struct {
		m     int
		limit float64
	}{
		{DefaultTableSize, 1.6},
		{655373, 1.2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("M=%d", tt.m), func(t *testing.T) {
			for _, removed := range []int{3, 37, 99} {
				r := disruption(100, tt.m, removed)
				if r > tt.limit {
					t.Errorf("removing member %d of 100 moved %.3f × the ideal 1%% of slots, want ≤ %.1f ×", removed, r, tt.limit)
				}
				t.Logf("removing member %d of 100 moved %.3f × the ideal", removed, r)
			}
		})
	}
}

func TestMaglevWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"1:2:3", []int{1, 2, 3}},
		{"10:20:30:40", []int{10, 20, 30, 40}},
		{"1:100", []int{1, 100}},
		{"100:50:50:1", []int{100, 50, 50, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := slotCounts(maglevTable(members(tt.weights...), DefaultTableSize), len(tt.weights))
			total := 0
			for _, w := range tt.weights {
				total += w
			}
			for i, w := range tt.weights {
				want := float64(w) / float64(total)
				got := float64(counts[i]) / DefaultTableSize
				if d := got/want - 1; d > 0.01 || d < -0.01 {
					t.Errorf("member %d (weight %d): slot share %.5f, want %.5f ± 1%%", i, w, got, want)
				}
				t.Logf("member %d (weight %d): slot share %.5f, ideal %.5f", i, w, got, want)
			}
		})
	}
}

// The table depends only on the members, not on insertion order or
// process: the group sorts by ID, and the permutation is from the ID.
func TestMaglevDeterministic(t *testing.T) {
	build := func(order []int) []uint32 {
		g, err := New(Config{Scheduler: Maglev{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range order {
			if err := g.Add(Backend{ID: fmt.Sprintf("m%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 9000+i), Weight: 10 * (i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		return g.snap.Load().picker.(*maglevPicker).table
	}
	a := build([]int{0, 1, 2, 3, 4})
	b := build([]int{4, 2, 0, 3, 1})
	if !slices.Equal(a, b) {
		t.Error("tables differ when the same members are added in another order")
	}
}

func TestMaglevFrozenLayout(t *testing.T) {
	// Pinned so that a change of hash, permutation or ordering shows up
	// as a test failure rather than as keys moving in production.
	table := maglevTable(members(100, 50, 100), 13)
	want := []uint32{0, 2, 1, 0, 0, 2, 0, 1, 0, 2, 2, 2, 0}
	if !slices.Equal(table, want) {
		t.Errorf("maglevTable(3 members, M=13) = %v, want %v", table, want)
	}
}

func TestMaglevValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Maglev
		ok   bool
	}{
		{"default", Maglev{}, true},
		{"prime", Maglev{TableSize: 5003}, true},
		{"not prime", Maglev{TableSize: 65536}, false},
		{"one", Maglev{TableSize: 1}, false},
		{"negative", Maglev{TableSize: -7}, false},
		{"too big", Maglev{TableSize: 16777259}, false},
		{"bad HashBy", Maglev{By: 9}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			var ce *ConfigError
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("Validate() = %T, want *ConfigError", err)
			}
		})
	}
	if _, err := (Maglev{TableSize: 5}).Build(members(equal(7)...)); err == nil {
		t.Error("Build(7 members) with TableSize 5 succeeded, want an error")
	}
}

func TestKeyHashes(t *testing.T) {
	v4 := Key{Src: netip.MustParseAddrPort("192.0.2.1:1000"), Dst: netip.MustParseAddrPort("192.0.2.9:80")}
	mapped := Key{Src: netip.MustParseAddrPort("[::ffff:192.0.2.1]:2000"), Dst: netip.MustParseAddrPort("192.0.2.9:80")}
	if v4.SourceIPHash() != mapped.SourceIPHash() {
		t.Error("SourceIPHash differs for an IPv4 address and its IPv4-mapped form")
	}
	if v4.FourTupleHash() == mapped.FourTupleHash() {
		t.Error("FourTupleHash ignores the source port")
	}
	other := v4
	other.Dst = netip.MustParseAddrPort("192.0.2.9:81")
	if v4.FourTupleHash() == other.FourTupleHash() {
		t.Error("FourTupleHash ignores the destination port")
	}
	if v4.ConnIDHash() != v4.FourTupleHash() {
		t.Error("ConnIDHash without a connection ID is not the four-tuple hash")
	}
	a, b := v4, mapped
	a.Hash, a.HasHash = HashQUICConnID([]byte{1, 2, 3, 4}), true
	b.Hash, b.HasHash = HashQUICConnID([]byte{1, 2, 3, 4}), true
	if a.ConnIDHash() != b.ConnIDHash() {
		t.Error("ConnIDHash depends on the address when a connection ID is present")
	}
}

func TestMaglevHashKey(t *testing.T) {
	bs := []Backend{be("a", 100), be("b", 100), be("c", 100)}
	g := mustNew(t, Config{Scheduler: Maglev{By: HashKey}}, bs...)
	sch := mustNew(t, Config{Scheduler: Maglev{By: HashSourceIP}}, bs...)
	ks := fourTuples(300)
	// One hash, any client: one member.
	first, _ := member(g.Pick(Key{Src: ks[0].Src, Hash: 7, HasHash: true}))
	for i, k := range ks {
		k.Hash, k.HasHash = 7, true
		if m, _ := member(g.Pick(k)); m != first {
			t.Fatalf("Pick(client %d, Hash 7) = %s, want %s as for every client", i, id(m), id(first))
		}
	}
	// Small consecutive hashes still spread: the scheduler mixes them.
	got := map[string]int{}
	for h := range uint64(300) {
		m, _ := member(g.Pick(Key{Hash: h, HasHash: true}))
		got[m.ID()]++
	}
	for _, b := range bs {
		if got[b.ID] < 60 {
			t.Errorf("hashes 0–299: %s got %d, want about 100 (%v)", b.ID, got[b.ID], got)
		}
	}
	// Without HasHash, the source IP decides, as sch.
	for i, k := range ks {
		k.Hash = 7
		m, _ := member(g.Pick(k))
		want, _ := member(sch.Pick(k))
		if m.ID() != want.ID() {
			t.Fatalf("Pick(client %d, no HasHash) = %s, want %s as sch", i, m.ID(), want.ID())
		}
	}
}

// Two replicas given the same members through different histories — one
// built at once, one fed in shuffled batches with a member that came and
// went and a weight that changed and changed back — send 10,000 clients
// to the same members; when a backend leaves, the same clients move on
// both, and the keys that move are at most 1.6 × the leaver's share (the
// bound Maglev reaches at the default table size; see TestMaglevDisruption)
// at up to 100 members in the default table. At 1,000 members it does not
// hold — 6.7 × in 65537 slots, in 100003 (the paper's M > 100·N) too, and
// 4.3 × in 655373 — which the last cases pin loosely, so that a regression
// still shows.
func TestMaglevReplicasAgree(t *testing.T) {
	keys := churnKeys(10000)
	for _, tt := range []struct {
		n, m  int
		bound float64
	}{
		{10, DefaultTableSize, 1.6},
		{100, DefaultTableSize, 1.6},
		{1000, 100003, 8},
		{1000, DefaultTableSize, 8},
	} {
		n := tt.n
		t.Run(fmt.Sprintf("n=%d/M=%d", n, tt.m), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 1))
			bs := make([]Backend, n)
			for i := range bs {
				bs[i] = Backend{ID: fmt.Sprintf("10.2.%d.%d:443", i/250, i%250+1), Addr: fmt.Sprintf("10.2.%d.%d:443", i/250, i%250+1)}
			}
			cfg := Config{Scheduler: Maglev{By: HashSourceIP, TableSize: tt.m}}
			a := mustNew(t, cfg, bs...)
			b := mustNew(t, cfg, Backend{ID: "passer-by", Addr: "10.9.9.9:443"})
			shuffled := slices.Clone(bs)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			for len(shuffled) > 0 {
				k := min(len(shuffled), 1+n/8)
				if err := b.Add(shuffled[:k]...); err != nil {
					t.Fatal(err)
				}
				shuffled = shuffled[k:]
			}
			for _, step := range []error{b.SetWeight(bs[0].ID, 7), b.Remove("passer-by"), b.SetWeight(bs[0].ID, DefaultWeight)} {
				if step != nil {
					t.Fatal(step)
				}
			}
			before := make([]string, len(keys))
			for i, k := range keys {
				ma, _ := member(a.Pick(k))
				mb, _ := member(b.Pick(k))
				if ma.ID() != mb.ID() {
					t.Fatalf("Pick(key %d) = %s on replica a, %s on replica b", i, ma.ID(), mb.ID())
				}
				before[i] = ma.ID()
			}
			leaver := bs[r.IntN(n)].ID
			table := a.snap.Load().picker.(*maglevPicker)
			leaverSlots := 0
			for _, i := range table.table {
				if table.members[i].ID() == leaver {
					leaverSlots++
				}
			}
			for _, g := range []*Group{a, b} {
				if err := g.Remove(leaver); err != nil {
					t.Fatal(err)
				}
			}
			after := a.snap.Load().picker.(*maglevPicker)
			movedSlots := 0
			for s, i := range table.table {
				if table.members[i].ID() != after.members[after.table[s]].ID() {
					movedSlots++
				}
			}
			movedKeys, leaverKeys := 0, 0
			for i, k := range keys {
				ma, _ := member(a.Pick(k))
				mb, _ := member(b.Pick(k))
				if ma.ID() != mb.ID() {
					t.Fatalf("after %s left: Pick(key %d) = %s on replica a, %s on replica b", leaver, i, ma.ID(), mb.ID())
				}
				if ma.ID() != before[i] {
					movedKeys++
				}
				if before[i] == leaver {
					leaverKeys++
				}
			}
			ratio := float64(movedSlots) / float64(leaverSlots)
			t.Logf("n=%d M=%d: %s left; slots moved %d = %.3f × its %d; keys moved %d of 10000, %.3f × its %d",
				n, tt.m, leaver, movedSlots, ratio, leaverSlots, movedKeys, float64(movedKeys)/float64(max(leaverKeys, 1)), leaverKeys)
			if ratio > tt.bound {
				t.Errorf("removing %s moved %.3f × its share of slots, want ≤ %.1f ×", leaver, ratio, tt.bound)
			}
		})
	}
}
