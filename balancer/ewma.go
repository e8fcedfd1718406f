package balancer

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// PeakEWMAConfig configures the ewma scheduler made by NewPeakEWMA. The
// zero value gives the defaults below, which PeakEWMA uses.
type PeakEWMAConfig struct {
	// Tau is the time constant of the latency estimate: an estimate not
	// refreshed by outcomes falls to 1/e of its value in Tau, and lower
	// outcomes pull it down as fast. If zero, 10s is used (Finagle's and
	// Linkerd's default). It must not be negative.
	Tau time.Duration
	// DefaultLatency is the estimate of a member before its first
	// outcome, which replaces it. Until then it decays like any
	// estimate, so a new member is tried soon even among faster ones. If zero, 30ms is used (Linkerd's
	// default RTT). It must not be negative.
	DefaultLatency time.Duration
	// Now returns the current time. If nil, time.Now is used. Tests pass a
	// fake clock.
	Now func() time.Time
	// Rand returns 64 random bits for drawing the pair of members. If nil,
	// math/rand/v2.Uint64 is used. It is called from concurrent picks
	// unless picks are serialized; tests pass a seeded source.
	Rand func() uint64
}

// The failure penalty: an outcome with an error counts as a latency of at
// least this many DefaultLatencies, so that a backend failing fast does
// not look like the fastest.
const failurePenaltyFactor = 10

// PeakEWMA returns the ewma scheduler with PeakEWMAConfig's defaults. See
// NewPeakEWMA.
func PeakEWMA() Scheduler {
	s, _ := NewPeakEWMA(PeakEWMAConfig{}) // the defaults are valid
	return s
}

// NewPeakEWMA returns the ewma scheduler: latency-aware, by the power of two
// choices over peak-EWMA latency, as the balancers of [Finagle] and
// [Linkerd] do.
// Each pick draws two distinct members in proportion to weight and takes
// the one of lower cost per unit of weight, where
//
//	cost = latency estimate × (Member.Outstanding + 1)
//
// The latency estimate of a member is learned from the outcomes reported
// through Picked.Done (DoneInfo.Latency): an outcome above the estimate
// replaces it at once (the "peak", so a slowdown is seen on its first
// slow answer), a lower one pulls it down as an exponentially weighted
// moving average with time constant Tau, and with no outcomes it decays
// toward zero with the same time constant, so that a member once slow is
// tried again after a while and recovers its share when it has recovered:
// its fast answers pull the estimate down with time constant Tau, so a
// 10× slowdown is forgotten within a few Tau, as in Finagle and Linkerd.
// An outcome with an error counts as at least 10 × DefaultLatency; an
// outcome with neither error nor latency is not observed. A member starts
// at DefaultLatency.
//
// Estimates belong to the scheduler and are kept by member ID across
// snapshots, so a change of the group does not forget what was learned;
// share one scheduler between groups only if their IDs name the same
// backends. The estimates of members absent from recent builds are
// dropped once they outnumber the present ones.
//
// It returns an error naming the field if Tau or DefaultLatency is
// negative.
//
// [Finagle]: https://twitter.github.io/finagle/guide/Clients.html#power-of-two-choices-p2c-peak-ewma
// [Linkerd]: https://linkerd.io/2-edge/features/load-balancing/
func NewPeakEWMA(cfg PeakEWMAConfig) (Scheduler, error) {
	if cfg.Tau < 0 {
		return nil, configErr("Tau", cfg.Tau, "negative")
	}
	if cfg.DefaultLatency < 0 {
		return nil, configErr("DefaultLatency", cfg.DefaultLatency, "negative")
	}
	if cfg.Tau == 0 {
		cfg.Tau = 10 * time.Second
	}
	if cfg.DefaultLatency == 0 {
		cfg.DefaultLatency = 30 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Uint64
	}
	return &ewmaScheduler{cfg: cfg, states: map[string]*ewmaState{}}, nil
}

type ewmaScheduler struct {
	cfg    PeakEWMAConfig
	mu     sync.Mutex // guards states; Build may be called by several groups
	states map[string]*ewmaState
}

func (*ewmaScheduler) Name() string { return NameEWMA }

func (s *ewmaScheduler) Build(members []*Member) (Picker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now().UnixNano()
	p := &ewmaPicker{
		members:  append([]*Member(nil), members...),
		weighted: newWeighted(members),
		states:   make([]*ewmaState, len(members)),
		byMember: make(map[*Member]*ewmaState, len(members)),
		invTau:   1 / float64(s.cfg.Tau),
		penalty:  failurePenaltyFactor * s.cfg.DefaultLatency,
		now:      s.cfg.Now,
		rand:     s.cfg.Rand,
	}
	present := make(map[string]bool, len(members))
	for i, m := range members {
		st := s.states[m.id]
		if st == nil {
			st = &ewmaState{}
			st.est.Store(math.Float64bits(float64(s.cfg.DefaultLatency)))
			st.stamp.Store(now)
			s.states[m.id] = st
		}
		p.states[i], p.byMember[m] = st, st
		present[m.id] = true
	}
	if len(s.states) > 2*len(members)+64 {
		for id := range s.states {
			if !present[id] {
				delete(s.states, id)
			}
		}
	}
	return p, nil
}

// ewmaState is one backend's latency estimate: est (float64 nanoseconds)
// as of stamp (Unix nanoseconds). Picks read the two words without a lock
// (a torn pair is a slightly wrong cost for one pick); outcomes update them
// under mu.
type ewmaState struct {
	est   atomic.Uint64
	stamp atomic.Int64
	mu    sync.Mutex
	seen  bool // an outcome has been observed; guarded by mu
	_     cacheLinePad
}

// at returns the estimate at time now: est decayed toward zero since stamp.
func (st *ewmaState) at(now int64, invTau float64) float64 {
	est := math.Float64frombits(st.est.Load())
	if dt := now - st.stamp.Load(); dt > 0 {
		est *= math.Exp(-float64(dt) * invTau)
	}
	return est
}

// observe folds an outcome of latency rtt (nanoseconds) in at time now.
func (st *ewmaState) observe(rtt float64, now int64, invTau float64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	w := 1.0 // the weight of the old estimate after the time since stamp
	if dt := now - st.stamp.Load(); dt > 0 {
		w = math.Exp(-float64(dt) * invTau)
	}
	// cur is the old estimate decayed to now: Finagle's estimate treats
	// the time since the last update as latency zero, so an outcome adds
	// rtt in the place of that zero, est·w + rtt·(1−w), and is not
	// weighted a second time.
	cur := math.Float64frombits(st.est.Load()) * w
	// The first outcome replaces DefaultLatency outright, as Finagle's
	// estimate starting at zero does: the default is a guess for a member
	// without data, and decaying it over Tau would let a guess outweigh
	// measurements for seconds.
	if rtt < cur && st.seen {
		rtt = cur + rtt*(1-w)
	}
	st.est.Store(math.Float64bits(rtt))
	st.stamp.Store(now)
	st.seen = true
}

type ewmaPicker struct {
	members []*Member
	weighted
	states   []*ewmaState // parallel to members
	byMember map[*Member]*ewmaState
	invTau   float64 // 1/Tau in 1/ns
	penalty  time.Duration
	now      func() time.Time
	rand     func() uint64
}

func (p *ewmaPicker) Pick(Key) *Member {
	if len(p.members) == 1 {
		return p.members[0]
	}
	i := p.sample(p.rand())
	j := p.sample(p.rand())
	if i == j {
		j = other(i, len(p.members), p.rand())
	}
	now := p.now().UnixNano()
	a, b := p.members[i], p.members[j]
	ca := p.states[i].at(now, p.invTau) * float64(a.Outstanding()+1)
	cb := p.states[j].at(now, p.invTau) * float64(b.Outstanding()+1)
	// ca/a.weight <= cb/b.weight, cross-multiplied.
	if ca*float64(b.weight) <= cb*float64(a.weight) {
		return a
	}
	return b
}

// Observe folds the outcome of a pick into m's latency estimate. Members
// the picker was not built with (a draining member keeping its sessions)
// are ignored.
func (p *ewmaPicker) Observe(m *Member, d DoneInfo) {
	st := p.byMember[m]
	if st == nil {
		return
	}
	rtt := d.Latency
	switch {
	case d.Err != nil:
		rtt = max(rtt, p.penalty)
	case rtt <= 0:
		return
	}
	st.observe(float64(rtt), p.now().UnixNano(), p.invTau)
}
