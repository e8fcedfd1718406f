package quiclb

import (
	"strconv"
	"strings"
	"testing"
)

func BenchmarkQUICLBDecode(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			id := mustID(b, strings.Repeat("a5", m.cfg.ServerIDLen))
			g, err := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: id})
			if err != nil {
				b.Fatal(err)
			}
			d, err := NewDecoder(m.cfg)
			if err != nil {
				b.Fatal(err)
			}
			cid, _ := g.GenerateConnectionID()
			dcid := cid.Bytes()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if got, ok := d.ServerID(dcid); !ok || got != id {
						b.Fatal("decode failed")
					}
				}
			})
		})
	}
}

func BenchmarkQUICLBGenerate(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			g, err := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: mustID(b, strings.Repeat("a5", m.cfg.ServerIDLen))})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := g.GenerateConnectionID(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkRouterRoute is the load balancer's per-flow cost: decode, then
// a table lookup, over tables of n servers.
func BenchmarkRouterRoute(b *testing.B) {
	for _, m := range modes {
		for _, n := range []int{10, 100, 1000, 10000} {
			b.Run(m.name+"/n="+strconv.Itoa(n), func(b *testing.B) {
				ids := ServerIDs{}
				var last ServerID
				for i := range n {
					raw := make([]byte, m.cfg.ServerIDLen)
					raw[len(raw)-1], raw[len(raw)-2] = byte(i), byte(i>>8)
					id, err := MakeServerID(raw)
					if err != nil {
						b.Fatal(err)
					}
					ids[id] = "backend-" + strconv.Itoa(i)
					last = id
				}
				g, err := NewGenerator(GeneratorConfig{Config: m.cfg, ServerID: last})
				if err != nil {
					b.Fatal(err)
				}
				d, err := NewDecoder(m.cfg)
				if err != nil {
					b.Fatal(err)
				}
				cid, _ := g.GenerateConnectionID()
				dcid := cid.Bytes()
				r := mustRouter(b, d, ids)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, ok := r.Route(dcid); !ok {
							b.Fatal("not routed")
						}
					}
				})
			})
		}
	}
}
