package attempt

import (
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// Attempt is the attempt a Loop ended with: its member is the client's
// until the work ends. The caller reports what the member proved —
// Succeeded when it showed it works (at once for TCP, at the response
// head for HTTP, at the first reply for a UDP flow), Failed if it turned
// out unreachable after all (an ICMP error on a UDP flow) — and ends the
// pick with Done, exactly once, when the connection, flow or request
// ends.
//
// An Attempt is a small immutable value: copying it and calling its
// methods allocate nothing, and its methods may be called from several
// goroutines. The zero Attempt has a nil Member and its methods do
// nothing.
type Attempt struct {
	p       balancer.Picked
	g       *balancer.Group
	env     Env
	start   time.Time
	now     func() time.Time
	retried bool
}

// Member returns the attempt's member.
func (a Attempt) Member() *balancer.Member { return a.p.Member }

// Start returns when the member was picked.
func (a Attempt) Start() time.Time { return a.start }

// Retried reports whether an attempt on another member failed first.
func (a Attempt) Retried() bool { return a.retried }

// Succeeded reports the member's proof of life to passive health and
// returns the latency: the time since the pick, at least 1ns. Pass it to
// Done.
func (a Attempt) Succeeded() time.Duration {
	if a.p.Member == nil {
		return 0
	}
	if h := a.env.Health(a.g); h != nil {
		h.ReportSuccess(a.p.Member.ID())
	}
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	return max(now().Sub(a.start), 1)
}

// Failed reports that the member turned out unreachable after it was
// taken, as Loop.Fail does with Unreachable: passive health hears a
// failure and a connect failure is counted. Pass err to Done.
func (a Attempt) Failed(err error) {
	m := a.p.Member
	if m == nil {
		return
	}
	if h := a.env.Health(a.g); h != nil {
		h.ReportFailure(m.ID())
	}
	a.env.Failed(m, err, true)
}

// Done ends the pick (balancer.Picked.Done) with the work's outcome. Call
// it exactly once.
func (a Attempt) Done(d balancer.DoneInfo) { a.p.Done(d) }
