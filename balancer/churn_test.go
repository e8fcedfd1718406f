package balancer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// churnModel is what a test believes a group holds: the backends and the
// health reported for each.
type churnModel struct {
	backends map[string]Backend
	reported map[string]bool // health last reported, if reported
}

// newChurnModel returns the model of a group no one has reported on.
func newChurnModel(g *Group) churnModel {
	mod := churnModel{backends: map[string]Backend{}, reported: map[string]bool{}}
	for _, m := range g.Members() {
		mod.backends[m.ID()] = Backend{ID: m.ID(), Addr: m.Addr(), Weight: m.Weight(), State: m.State(), Standby: m.Standby()}
	}
	return mod
}

// churn applies steps random changes — Add, Remove, SetWeight, SetState,
// SetHealthy, HealthChecked and its release — to g and to the model.
func churn(t *testing.T, g *Group, mod churnModel, r *rand.Rand, steps int) {
	t.Helper()
	var releases []func()
	any := func() string {
		ids := g.IDs()
		return ids[r.IntN(len(ids))]
	}
	next := len(mod.backends) // for addresses, which may repeat
	for step := range steps {
		var err error
		switch op := r.IntN(20); {
		case op < 4 || len(mod.backends) < 3:
			b := Backend{ID: fmt.Sprintf("m%016x", r.Uint64()), Addr: fmt.Sprintf("10.1.%d.%d:80", next/250, next%250+1), Weight: 1 + r.IntN(200), Standby: r.IntN(8) == 0}
			next++
			err = g.Add(b)
			mod.backends[b.ID] = b
		case op < 7:
			id := any()
			err = g.Remove(id)
			delete(mod.backends, id)
			delete(mod.reported, id)
		case op < 12:
			id, w := any(), 1+r.IntN(200)
			err = g.SetWeight(id, w)
			b := mod.backends[id]
			b.Weight = w
			mod.backends[id] = b
		case op < 14:
			id, s := any(), State(r.IntN(3))
			err = g.SetState(id, s)
			b := mod.backends[id]
			if b.State == Maint && s != Maint {
				delete(mod.reported, id)
			}
			b.State = s
			mod.backends[id] = b
		case op < 19:
			id, h := any(), r.IntN(3) != 0
			err = g.SetHealthy(id, h)
			mod.reported[id] = h
		case len(releases) > 0 && r.IntN(2) == 0:
			releases[0]()
			releases = releases[1:]
		default:
			releases = append(releases, g.HealthChecked())
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	if len(releases) > 0 {
		t.Cleanup(func() {
			for _, rel := range releases {
				rel()
			}
		})
	}
}

// fresh builds a new group with the model's final membership and reports,
// and as many health checkers as g has.
func (mod churnModel) fresh(t *testing.T, g *Group, cfg Config) *Group {
	t.Helper()
	var bs []Backend
	for _, b := range mod.backends {
		bs = append(bs, b)
	}
	rand.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
	f := mustNew(t, cfg, bs...)
	g.mu.Lock()
	checkers := g.checkers
	g.mu.Unlock()
	for range checkers {
		t.Cleanup(f.HealthChecked())
	}
	for id, h := range mod.reported {
		if err := f.SetHealthy(id, h); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// view is everything a snapshot shows of a member.
func view(m *Member) string {
	return fmt.Sprintf("%s %s w=%d %v standby=%v healthy=%v sticky=%v reported=%v/%v",
		m.id, m.addr, m.weight, m.state, m.standby, m.healthy, m.sticky, m.reported, m.reportedHealthy)
}

func ids(ms []*Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.id
	}
	return out
}

// A group changed a member at a time ends up exactly as a group built
// fresh from its final membership: the same member views, the same
// eligible members, and for the hash schedulers the same table and the
// same member for 10,000 keys — replicas started at different times
// agree.
func TestChurnMatchesFreshBuild(t *testing.T) {
	for _, sc := range schedulers {
		for _, failOpen := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/failOpen=%v", sc.name, failOpen), func(t *testing.T) {
				cfg := Config{Scheduler: sc.s, FailOpen: failOpen}
				if m, ok := sc.s.(Maglev); ok {
					m.TableSize = 4099 // prime, > 10 × the members: a quicker build, the same code
					cfg.Scheduler = m
				}
				r := rand.New(rand.NewPCG(7, uint64(len(sc.name))))
				var bs []Backend
				for i := range 200 {
					bs = append(bs, Backend{ID: fmt.Sprintf("b%05d", i), Addr: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1), Weight: 1 + r.IntN(200)})
				}
				g := mustNew(t, cfg, bs...)
				mod := newChurnModel(g)
				for round := range 4 {
					churn(t, g, mod, r, 150)
					f := mod.fresh(t, g, cfg)
					gs, fs := g.snap.Load(), f.snap.Load()
					for i := range max(len(gs.members), len(fs.members)) {
						if i >= len(gs.members) || i >= len(fs.members) {
							t.Fatalf("round %d: %d members, fresh group has %d", round, len(gs.members), len(fs.members))
						}
						if a, b := view(gs.members[i]), view(fs.members[i]); a != b {
							t.Fatalf("round %d: member %d is %s, fresh group's is %s", round, i, a, b)
						}
						if m, ok := g.Member(fs.members[i].id); !ok || m != gs.members[i] {
							t.Fatalf("round %d: Member(%q) = %v, want the snapshot's", round, fs.members[i].id, m)
						}
					}
					if a, b := ids(gs.eligible), ids(fs.eligible); !slices.Equal(a, b) {
						t.Fatalf("round %d: eligible %v, fresh group's %v", round, a, b)
					}
					mg, ok := gs.picker.(*maglevPicker)
					if !ok {
						continue
					}
					if !slices.Equal(mg.table, fs.picker.(*maglevPicker).table) {
						t.Fatalf("round %d: Maglev table differs from a fresh build's", round)
					}
					for i, k := range churnKeys(10000) {
						a, errA := member(g.Pick(k))
						b, errB := member(f.Pick(k))
						if errA != nil || errB != nil || a.id != b.id {
							t.Fatalf("round %d: Pick(key %d) = %v, %v; fresh group's %v, %v", round, i, id(a), errA, id(b), errB)
						}
					}
				}
			})
		}
	}
}

// churnKeys returns n keys with distinct source addresses, four-tuples
// and hashes.
func churnKeys(n int) []Key {
	ks := fourTuples(n)
	for i := range ks {
		ks[i].Hash, ks[i].HasHash = uint64(i)*0x9e3779b97f4a7c15, true
	}
	return ks
}
