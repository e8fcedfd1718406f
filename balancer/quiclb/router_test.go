package quiclb

import (
	"strings"
	"sync"
	"testing"
)

func TestRouter(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := mustID(t, strings.Repeat("a5", m.cfg.ServerIDLen))
			b := mustID(t, strings.Repeat("5a", m.cfg.ServerIDLen))
			ga, err := NewGenerator(m.cfg, a)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := NewGenerator(m.cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			d, err := NewDecoder(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ca, _ := ga.GenerateConnectionID()
			cb, _ := gb.GenerateConnectionID()
			r := NewRouter(d, ServerIDs{a: "A", b: "B"})
			steps := []struct {
				name string
				ids  ServerIDs // replaces the table when not nil
				dcid []byte
				want string
				ok   bool
			}{
				{name: "a", dcid: ca.Bytes(), want: "A", ok: true},
				{name: "b", dcid: cb.Bytes(), want: "B", ok: true},
				{name: "short", dcid: ca.Bytes()[:3]},
				{name: "empty", dcid: nil},
				{name: "unroutable codepoint", dcid: append([]byte{0xe0}, ca.Bytes()[1:]...)},
				{name: "b leaves", ids: ServerIDs{a: "A"}, dcid: cb.Bytes()},
				{name: "a stays", dcid: ca.Bytes(), want: "A", ok: true},
				{name: "empty table", ids: ServerIDs{}, dcid: ca.Bytes()},
			}
			for i, s := range steps {
				if s.ids != nil {
					r.SetServerIDs(s.ids)
				}
				if got, ok := r.Route(s.dcid); got != s.want || ok != s.ok {
					t.Errorf("Route(step %d, %s) = %q, %v, want %q, %v", i, s.name, got, ok, s.want, s.ok)
				}
			}
		})
	}
}

func TestRouterZero(t *testing.T) {
	var r Router
	if id, ok := r.Route([]byte{0, 1, 2, 3, 4, 5, 6, 7}); ok {
		t.Errorf("zero Router: Route = %q, true, want false", id)
	}
	if got := NewRouter(nil, ServerIDs{}).ServerIDs(); got == nil {
		t.Error("ServerIDs() = nil, want the table")
	}
}

// Route runs while the table is replaced; run with -race.
func TestRouterConcurrentSwap(t *testing.T) {
	cfg := modes[2].cfg
	a := mustID(t, "a5a5")
	g, _ := NewGenerator(cfg, a)
	d, _ := NewDecoder(cfg)
	cid, _ := g.GenerateConnectionID()
	r := NewRouter(d, ServerIDs{a: "A"})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if id, ok := r.Route(cid.Bytes()); ok && id != "A" && id != "A2" {
					t.Errorf("Route = %q, want A or A2", id)
					return
				}
			}
		})
	}
	for i := range 200 {
		if i%2 == 0 {
			r.SetServerIDs(ServerIDs{a: "A2"})
		} else {
			r.SetServerIDs(ServerIDs{a: "A"})
		}
	}
	wg.Wait()
}

func TestRouterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, m := range modes {
		a := mustID(t, strings.Repeat("a5", m.cfg.ServerIDLen))
		g, _ := NewGenerator(m.cfg, a)
		d, _ := NewDecoder(m.cfg)
		cid, _ := g.GenerateConnectionID()
		dcid := cid.Bytes()
		r := NewRouter(d, ServerIDs{a: "A"})
		if n := testing.AllocsPerRun(100, func() { r.Route(dcid) }); n != 0 {
			t.Errorf("%s: Route allocates %v times, want 0", m.name, n)
		}
	}
}
