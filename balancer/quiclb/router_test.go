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
			ga, err := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: a})
			if err != nil {
				t.Fatal(err)
			}
			gb, err := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: b})
			if err != nil {
				t.Fatal(err)
			}
			d, err := NewDecoder(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ca, _ := ga.GenerateConnectionID()
			cb, _ := gb.GenerateConnectionID()
			r := mustRouter(t, d, ServerIDs{a: "A", b: "B"})
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
					if err := r.SetServerIDs(s.ids); err != nil {
						t.Fatalf("SetServerIDs(step %d, %s) = %v", i, s.name, err)
					}
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
	d, _ := NewDecoder(Config{})
	if got := mustRouter(t, d, ServerIDs{}).ServerIDs(); got == nil {
		t.Error("ServerIDs() = nil, want the table")
	}
}

// NewRouter and SetServerIDs refuse, in one rule, what could never route.
func TestRouterRefuses(t *testing.T) {
	d, _ := NewDecoder(Config{}) // 2-octet server IDs
	good, short := mustID(t, "0102"), mustID(t, "01")
	if _, err := NewRouter(RouterConfig{}); err == nil || err.Error() != `quiclb: Decoder "": no decoder given` {
		t.Errorf("NewRouter(no decoder) = %v", err)
	}
	for _, tt := range []struct {
		name string
		ids  ServerIDs
		want string
	}{
		{"wrong length", ServerIDs{good: "a", short: "b"}, `quiclb: ServerIDs "01": length 1 octets, want the decoder's ServerIDLen 2`},
		{"empty backend", ServerIDs{good: ""}, `quiclb: ServerIDs "0102": empty backend ID`},
	} {
		_, err := NewRouter(RouterConfig{Decoder: d, ServerIDs: tt.ids})
		if err == nil || err.Error() != tt.want {
			t.Errorf("NewRouter(%s) = %v, want %s", tt.name, err, tt.want)
		}
		r := mustRouter(t, d, ServerIDs{good: "a"})
		if err := r.SetServerIDs(tt.ids); err == nil || err.Error() != tt.want {
			t.Errorf("SetServerIDs(%s) = %v, want %s", tt.name, err, tt.want)
		}
		if got := r.ServerIDs()[good]; got != "a" {
			t.Errorf("after a refused SetServerIDs(%s): table maps %s to %q, want the old %q", tt.name, good, got, "a")
		}
	}
}

// Route runs while the table is replaced; run with -race.
func TestRouterConcurrentSwap(t *testing.T) {
	cfg := modes[2].cfg
	a := mustID(t, "a5a5")
	g, _ := NewGenerator(GeneratorConfig{Config: cfg, ServerID: a})
	d, _ := NewDecoder(cfg)
	cid, _ := g.GenerateConnectionID()
	r := mustRouter(t, d, ServerIDs{a: "A"})
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
		g, _ := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: a})
		d, _ := NewDecoder(m.cfg)
		cid, _ := g.GenerateConnectionID()
		dcid := cid.Bytes()
		r := mustRouter(t, d, ServerIDs{a: "A"})
		if n := testing.AllocsPerRun(100, func() { r.Route(dcid) }); n != 0 {
			t.Errorf("%s: Route allocates %v times, want 0", m.name, n)
		}
	}
}
