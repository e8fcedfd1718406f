package discovery

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// Membership is what a source keeps in step with the world: a server
// group's whole membership. *balancer.Group implements it; Replace is
// its all-or-nothing update, which keeps the health, counters and
// sessions of members whose ID and address stay.
type Membership interface {
	Replace(backends []balancer.Backend) error
}

// memberStates is what a Membership that can tell a member's current
// State also has (*balancer.Group does): a member an operator drained or
// put in maintenance stays so across the source's updates, since a DNS
// answer says who the members are, not whether they take work.
type memberStates interface {
	Member(id string) (*balancer.Member, bool)
}

// DNS is a source that keeps a group's membership in step with a DNS
// name: each address of an A/AAAA name is one member on the configured
// port, or each address of each SRV target one member on the record's
// port, weighted by the record's weight, in the primary tier for the
// lowest priority value and the standby tier for the others
// (docs/model.md §3).
//
// A lookup asks the resolver over UDP, and again over TCP when the
// answer comes back truncated. When the set of members differs from the
// last one applied, it replaces the group's membership in one update;
// members are identified by address and port, so those an answer
// repeats keep their state. A lookup that fails (a timeout, SERVFAIL,
// REFUSED) or finds no address keeps the last good set: it is counted
// (Stats), logged, and never empties the group. The source asks again
// when the answer's shortest TTL runs out, bounded by MinTTL and MaxTTL
// (a TTL of 0 waits MinTTL); after a failure it waits MinTTL, doubling
// with each further failure up to 30 s and MaxTTL.
//
// Create a DNS with NewDNS. Most callers want Start and Stop, or Run
// with a context of their own; Resolve is one lookup, for a caller that
// schedules its own. A DNS is safe for concurrent use.
type DNS struct {
	cfg DNSConfig
	m   Membership
	r   *resolver
	// newTimer is the clock of Run, a seam for tests.
	newTimer func(time.Duration) (<-chan time.Time, func() bool)

	mu       sync.Mutex // serializes lookups and their updates
	last     []balancer.Backend
	failures int // consecutive

	lookups, updates, failed, empty atomic.Uint64
	members                         atomic.Int64

	life    sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// Stats are a source's counters since it was created.
type Stats struct {
	Lookups  uint64 // lookups made, each of one or more DNS exchanges
	Updates  uint64 // lookups whose answer changed the membership
	Failures uint64 // lookups that failed (timeout, error code, group refused the set); the last good set stayed
	Empty    uint64 // lookups that found no address; the last good set stayed
	Members  int    // members of the last good set
}

// NewDNS returns a source that keeps m in step with the DNS name of cfg.
// It makes no lookup until Resolve, Run or Start.
func NewDNS(cfg DNSConfig, m Membership) (*DNS, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, configErr("Membership", "nil", "missing")
	}
	return &DNS{cfg: cfg, m: m, r: newResolver(cfg), newTimer: realTimer}, nil
}

func realTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Config returns the source's configuration, with its defaults filled.
func (d *DNS) Config() DNSConfig { return d.cfg }

// Resolve makes one lookup and applies its answer, and returns how long
// to wait before the next: the answer's TTL within MinTTL and MaxTTL,
// or the failure backoff. The error is the lookup's (ErrNoRecords for an
// answer with no address) or the group's refusal of the set; either way
// the last good set stays.
func (d *DNS) Resolve(ctx context.Context) (next time.Duration, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups.Add(1)
	var ans answer
	switch d.cfg.Type {
	case SRV:
		ans, err = d.r.lookupSRV(ctx, d.cfg.Name)
	default:
		ans, err = d.r.lookupA(ctx, d.cfg.Name, d.cfg.Port, d.cfg.Weight)
	}
	if err == nil && len(ans.backends) == 0 {
		err = ErrNoRecords
	}
	if err == nil {
		err = d.apply(ans.backends)
	}
	if err != nil {
		return d.fail(err), err
	}
	d.failures = 0
	return min(max(ans.ttl, d.cfg.MinTTL), d.cfg.MaxTTL), nil
}

// apply replaces the membership with bs if it differs from the last set
// applied. Called with d.mu held.
func (d *DNS) apply(bs []balancer.Backend) error {
	slices.SortFunc(bs, func(a, b balancer.Backend) int { return strings.Compare(a.ID, b.ID) })
	if d.last != nil && slices.Equal(bs, d.last) {
		return nil
	}
	// Stats.Members leads the membership: whoever sees the group change
	// (Membership.Replace) then reads the new set's size.
	prev := d.members.Swap(int64(len(bs)))
	if err := d.m.Replace(d.keepStates(bs)); err != nil {
		d.members.Store(prev)
		return err
	}
	added, removed := diff(d.last, bs)
	d.last = bs
	d.updates.Add(1)
	d.cfg.Logger.Info("discovery: members changed", "name", d.cfg.Name, "type", d.cfg.Type.String(),
		"members", len(bs), "added", added, "removed", removed)
	return nil
}

// keepStates returns bs with the State each member still in the group
// has there (Drain or Maint set by an operator), when the Membership can
// tell; bs itself stays as the answer said, to compare the next one with.
func (d *DNS) keepStates(bs []balancer.Backend) []balancer.Backend {
	ms, ok := d.m.(memberStates)
	if !ok {
		return bs
	}
	out := slices.Clone(bs)
	for i, b := range out {
		if m, ok := ms.Member(b.ID); ok && m.Addr() == b.Addr {
			out[i].State = m.State()
		}
	}
	return out
}

// fail counts and logs a failed lookup and returns the backoff before
// the next. Called with d.mu held.
func (d *DNS) fail(err error) time.Duration {
	if err == ErrNoRecords {
		d.empty.Add(1)
	} else {
		d.failed.Add(1)
	}
	d.failures++
	wait := d.cfg.MinTTL << min(d.failures-1, 30)
	wait = min(wait, max(maxRetry, d.cfg.MinTTL), d.cfg.MaxTTL)
	d.cfg.Logger.Warn("discovery: lookup failed; keeping the last good members", "name", d.cfg.Name,
		"type", d.cfg.Type.String(), "err", err.Error(), "members", len(d.last), "retry", wait)
	return wait
}

// diff counts the IDs of next not in prev (added) and of prev not in
// next (removed); both are sorted by ID.
func diff(prev, next []balancer.Backend) (added, removed int) {
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || (i < len(prev) && prev[i].ID < next[j].ID):
			removed++
			i++
		case i == len(prev) || next[j].ID < prev[i].ID:
			added++
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}

// Stats returns the source's counters.
func (d *DNS) Stats() Stats {
	return Stats{
		Lookups:  d.lookups.Load(),
		Updates:  d.updates.Load(),
		Failures: d.failed.Load(),
		Empty:    d.empty.Load(),
		Members:  int(d.members.Load()),
	}
}

// Members returns the last good set applied, sorted by ID, or nil before
// the first.
func (d *DNS) Members() []balancer.Backend {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.last)
}

// Run looks up the name now and again on every TTL until ctx ends, and
// returns ctx's error.
func (d *DNS) Run(ctx context.Context) error {
	for {
		next, _ := d.Resolve(ctx) // counted and logged; the last good set stays
		c, stop := d.newTimer(next)
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-c:
		}
	}
}

// Start runs the source in a goroutine of its own until Stop. Starting
// a started source does nothing; a stopped one returns ErrStopped.
func (d *DNS) Start() error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.stopped {
		return ErrStopped
	}
	if d.done != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		_ = d.Run(ctx)
	}()
	return nil
}

// Stop stops the goroutine Start started, aborting a lookup in flight,
// and waits for it to end. The group keeps its members. Stop is
// idempotent.
func (d *DNS) Stop() {
	d.life.Lock()
	defer d.life.Unlock()
	d.stopped = true
	if d.done != nil {
		d.cancel()
		<-d.done
	}
}
