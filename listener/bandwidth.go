package listener

import (
	"context"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// chunk is the most a proxied stream moves between bandwidth and idle
// bookkeeping steps, and the burst of every bandwidth limiter.
const chunk = 256 << 10

// limits is a pair of byte-rate limiters, one per direction, shared by all
// the connections they govern. A nil *limits, or nil limiters, is
// uncapped.
type limits struct {
	in, out *rate.Limiter
}

func newLimits(mbps int) *limits {
	if mbps <= 0 {
		return nil
	}
	r := mbpsToRate(mbps)
	return &limits{in: rate.NewLimiter(r, chunk), out: rate.NewLimiter(r, chunk)}
}

func mbpsToRate(mbps int) rate.Limit { return rate.Limit(float64(mbps) * 1e6 / 8) }

// limiterRef points at the limits in force for a listener: its own, the
// instance's, or none; swapped live by SetBandwidth.
type limiterRef struct{ p atomic.Pointer[limits] }

func (r *limiterRef) load() *limits { return r.p.Load() }

// pay waits until n bytes may pass lim, after they were sent: a
// connection that sends little pays little, and a bulk transfer is held to
// the rate on average, at most one chunk ahead.
func pay(ctx context.Context, lim *rate.Limiter, n int) error {
	for n > 0 {
		step := min(n, chunk)
		if err := lim.WaitN(ctx, step); err != nil {
			return err
		}
		n -= step
	}
	return nil
}
