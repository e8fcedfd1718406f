package health_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/health"
)

// BenchmarkReport measures the per-connection cost a listener pays to feed
// passive checking, by group size.
func BenchmarkReport(b *testing.B) {
	ok := health.ProbeFunc(func(context.Context, string) error { return nil })
	for _, n := range []int{10, 100, 1000, 10000} {
		ts := make([]health.Target, n)
		for i := range ts {
			ts[i] = health.Target{Addr: fmt.Sprintf("10.%d.%d.%d:80", i>>16, i>>8&255, i&255)}
		}
		c, err := health.New(health.Config{Probe: ok, TrustNew: true, Passive: health.Passive{Failures: 5}}, ts...)
		if err != nil {
			b.Fatal(err)
		}
		id := ts[n/2].Addr
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if i++; i%4 == 0 {
						c.ReportFailure(id)
					} else {
						c.ReportSuccess(id)
					}
				}
			})
		})
		c.Stop()
	}
}
