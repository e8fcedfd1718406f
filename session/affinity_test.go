package session

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func newAffinity(tb testing.TB, cfg AffinityConfig) *Affinity {
	tb.Helper()
	a, err := NewAffinity(cfg)
	if err != nil {
		tb.Fatalf("NewAffinity(%+v): %v", cfg, err)
	}
	return a
}

func TestNewAffinityConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   AffinityConfig
		field string
	}{
		{name: "zero is off", cfg: AffinityConfig{}},
		{name: "1s", cfg: AffinityConfig{PersistenceTimeout: time.Second}},
		{name: "3600s", cfg: AffinityConfig{PersistenceTimeout: time.Hour, MaxEntries: 64}},
		{name: "100ms, below the CLB", cfg: AffinityConfig{PersistenceTimeout: 100 * time.Millisecond}},
		{name: "1 day, beyond the CLB", cfg: AffinityConfig{PersistenceTimeout: 24 * time.Hour}},
		{name: "negative", cfg: AffinityConfig{PersistenceTimeout: -time.Second}, field: "PersistenceTimeout"},
		{name: "63 entries", cfg: AffinityConfig{MaxEntries: 63}, field: "MaxEntries"},
		{name: "negative entries", cfg: AffinityConfig{MaxEntries: -1}, field: "MaxEntries"},
		{name: "too many entries", cfg: AffinityConfig{MaxEntries: 1<<26 + 1}, field: "MaxEntries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAffinity(tc.cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("NewAffinity = %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("NewAffinity = %v, want *ConfigError for %s", err, tc.field)
			}
		})
	}
}

func TestAffinityOff(t *testing.T) {
	a := newAffinity(t, AffinityConfig{})
	ip := netip.MustParseAddr("192.0.2.1")
	a.SetAt(ip, "a", t0)
	if id, ok := a.LookupAt(ip, t0); ok {
		t.Errorf("off: LookupAt = %q, true", id)
	}
	if a.TouchAt(ip, t0) || a.Len() != 0 || a.SweepAt(t0) != 0 || a.Delete("a") != 0 {
		t.Error("off table holds entries")
	}
}

func TestAffinityIdleExpiry(t *testing.T) {
	a := newAffinity(t, AffinityConfig{PersistenceTimeout: 10 * time.Second})
	ip := netip.MustParseAddr("192.0.2.1")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	steps := []struct {
		name string
		op   string // set, touch, lookup
		at   time.Duration
		addr netip.Addr
		id   string
		want string // lookup: "" means miss; touch: "ok" or ""
	}{
		{"miss before set", "lookup", 0, ip, "", ""},
		{"set", "set", 0, ip, "a", ""},
		{"hit", "lookup", 9 * time.Second, ip, "", "a"},
		{"mapped form is the same client", "lookup", 9 * time.Second, mapped, "", "a"},
		{"lookup does not refresh", "lookup", 10 * time.Second, ip, "", ""},
		{"set again", "set", 20 * time.Second, mapped, "b", ""},
		{"hit b", "lookup", 25 * time.Second, ip, "", "b"},
		{"touch refreshes", "touch", 29 * time.Second, ip, "", "ok"},
		{"alive after touch", "lookup", 38 * time.Second, ip, "", "b"},
		{"expired", "lookup", 39 * time.Second, ip, "", ""},
		{"touch expired fails", "touch", 40 * time.Second, ip, "", ""},
		{"invalid addr", "lookup", 40 * time.Second, netip.Addr{}, "", ""},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		switch st.op {
		case "set":
			a.SetAt(st.addr, st.id, now)
		case "touch":
			if got := a.TouchAt(st.addr, now); got != (st.want == "ok") {
				t.Errorf("TouchAt(step %d %s) = %v", i, st.name, got)
			}
		case "lookup":
			id, ok := a.LookupAt(st.addr, now)
			if id != st.want || ok != (st.want != "") {
				t.Errorf("LookupAt(step %d %s) = %q, %v; want %q", i, st.name, id, ok, st.want)
			}
		}
	}
	if a.Len() != 0 {
		t.Errorf("Len = %d after lazy expiry, want 0", a.Len())
	}
}

func addrN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func TestAffinityEviction(t *testing.T) {
	a := newAffinity(t, AffinityConfig{PersistenceTimeout: time.Hour, MaxEntries: 128})
	const n = 2000
	for i := range n {
		a.SetAt(addrN(i), "a", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if got := a.Len(); got != 128 {
		t.Fatalf("Len = %d after %d sets, want the bound 128", got, n)
	}
	// Every shard holds its 2 most recently set entries: LRU per shard.
	byShard := map[*affShard][]int{}
	for i := range n {
		byShard[a.shard(a.hash(keyOf(addrN(i))))] = append(byShard[a.shard(a.hash(keyOf(addrN(i))))], i)
	}
	now := t0.Add(n * time.Millisecond)
	for sh, ids := range byShard {
		for k, i := range ids {
			_, ok := a.LookupAt(addrN(i), now)
			if want := k >= len(ids)-int(sh.cap); ok != want {
				t.Errorf("LookupAt(%v) = %v, want %v (rank %d of %d in its shard)", addrN(i), ok, want, k, len(ids))
			}
		}
	}
	// Re-setting an entry makes it most recent: it survives the next eviction.
	b := newAffinity(t, AffinityConfig{PersistenceTimeout: time.Hour, MaxEntries: 64})
	var same []netip.Addr
	for i := 0; len(same) < 3; i++ {
		if b.shard(b.hash(keyOf(addrN(i)))) == b.shard(b.hash(keyOf(addrN(0)))) {
			same = append(same, addrN(i))
		}
	}
	b.SetAt(same[0], "x", t0)
	b.SetAt(same[0], "y", t0.Add(2*time.Second))
	b.SetAt(same[1], "z", t0.Add(3*time.Second)) // evicts same[0], the shard's only entry
	if _, ok := b.LookupAt(same[0], t0.Add(4*time.Second)); ok {
		t.Error("LRU entry not evicted")
	}
	if id, _ := b.LookupAt(same[1], t0.Add(4*time.Second)); id != "z" {
		t.Errorf("LookupAt(newest) = %q, want z", id)
	}
}

func TestAffinitySweepAndDelete(t *testing.T) {
	a := newAffinity(t, AffinityConfig{PersistenceTimeout: 10 * time.Second, MaxEntries: 1 << 12})
	for i := range 1000 {
		id := "a"
		if i%2 == 1 {
			id = "b"
		}
		a.SetAt(addrN(i), id, t0.Add(time.Duration(i)*10*time.Millisecond)) // i=999 at 9.99s
	}
	if got := a.Delete("b"); got != 500 {
		t.Errorf("Delete(b) = %d, want 500", got)
	}
	if _, ok := a.LookupAt(addrN(1), t0); ok {
		t.Error("deleted entry still found")
	}
	if got := a.SweepAt(t0.Add(15 * time.Second)); got != 251 { // even i touched at or before 5s
		t.Errorf("SweepAt(15s) = %d, want 251", got)
	}
	if got := a.Len(); got != 249 {
		t.Errorf("Len = %d, want 249", got)
	}
	if got := a.SweepAt(t0.Add(time.Minute)); got != 249 || a.Len() != 0 {
		t.Errorf("SweepAt(1m) = %d, Len %d; want 249, 0", got, a.Len())
	}
	// Slots are reused after removal: the backing arrays do not grow.
	before := 0
	for k := range a.shards {
		before += cap(a.shards[k].ents)
	}
	for i := range 1000 {
		a.SetAt(addrN(i), "c", t0.Add(time.Hour))
	}
	after := 0
	for k := range a.shards {
		after += cap(a.shards[k].ents)
	}
	if after != before {
		t.Errorf("entry slots grew from %d to %d on reuse", before, after)
	}
	// Set reclaims expired entries from its shard's LRU end.
	if got := a.Len(); got != 1000 {
		t.Fatalf("Len = %d", got)
	}
	for i := 1000; i < 1200; i++ {
		a.SetAt(addrN(i), "d", t0.Add(2*time.Hour))
	}
	if got := a.Len(); got >= 1200 {
		t.Errorf("Len = %d after Sets over expired entries, want fewer than 1200", got)
	}
}

func TestAffinityConcurrent(t *testing.T) {
	a := newAffinity(t, AffinityConfig{PersistenceTimeout: time.Minute, MaxEntries: 512})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				ip := addrN((g*7919 + i) % 1500)
				now := t0.Add(time.Duration(i) * time.Millisecond)
				switch i % 7 {
				case 0:
					a.SetAt(ip, fmt.Sprint("b", g), now)
				case 1:
					a.TouchAt(ip, now)
				case 2:
					if i%200 == 2 {
						a.Delete("b1")
						a.SweepAt(now)
					}
				default:
					if id, ok := a.LookupAt(ip, now); ok && len(id) < 2 {
						t.Errorf("LookupAt = %q", id)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := a.Len(); n > 512 {
		t.Errorf("Len = %d, above MaxEntries 512", n)
	}
	// Structural check of every shard's list.
	for k := range a.shards {
		s := &a.shards[k].affShard
		n, prev := 0, int32(-1)
		for i := s.head; i >= 0; i = s.ents[i].next {
			if s.ents[i].prev != prev || s.idx[s.ents[i].hash] != i {
				t.Fatalf("shard %d: broken list at %d", k, i)
			}
			prev, n = i, n+1
		}
		if prev != s.tail || n != len(s.idx) {
			t.Fatalf("shard %d: list has %d entries, map %d", k, n, len(s.idx))
		}
	}
}
