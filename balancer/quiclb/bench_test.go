package quiclb

import (
	"strings"
	"testing"
)

func BenchmarkQUICLBDecode(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			id := mustID(b, strings.Repeat("a5", m.cfg.ServerIDLen))
			g, err := NewGenerator(m.cfg, id)
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
			g, err := NewGenerator(m.cfg, mustID(b, strings.Repeat("a5", m.cfg.ServerIDLen)))
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
