package attempt

import (
	"context"
	"time"

	"github.com/lbkit/lbkit/balancer"
)

// Max bounds the members tried for one client, as HAProxy's default
// "retries 3" does.
const Max = 3

// Failure says what a failed attempt means, for Loop.Fail.
type Failure int

const (
	// Unreachable: the member could not be reached (the connection was
	// refused, timed out, or the host is unreachable). Passive health
	// hears a failure, a connect failure is counted, and the next member
	// is tried.
	Unreachable Failure = iota
	// Retry: the member was reached but failed before answering, and
	// the work may be sent again (nothing of it was processed, or it is
	// idempotent). The next member is tried.
	Retry
	// Final: the member failed and the work must not go elsewhere: it
	// may have been processed (a request body that cannot be replayed),
	// or the member was silent for the whole timeout, which another
	// member would only repeat. The loop ends.
	Final
)

// Loop is one client's attempt loop; see the package doc for the rules it
// keeps. Fill in its exported fields, then call Next until it returns
// false; after each Next, either Fail the attempt or take it with
// Connected.
//
// The zero Loop is not usable: Group and Env are required. A Loop is
// used by one goroutine; it lives on the caller's stack and allocates
// nothing.
type Loop struct {
	// Group is the server group to pick from.
	Group *balancer.Group
	// Key is the pick's input.
	Key balancer.Key
	// Sticky names the member the client was placed on before (a
	// session cookie, a source-IP affinity entry, a QUIC connection ID);
	// the first pick returns it if it may still take the client
	// (balancer.Group.PickSticky). Empty means a plain pick.
	Sticky string
	// Stop is done when the proxy stops or the client has left. Nil
	// means never.
	Stop context.Context
	// Env counts and reports outcomes.
	Env Env
	// Now returns the current time; nil means time.Now. Latency is
	// measured from the pick to Attempt.Succeeded.
	Now func() time.Time

	cur     balancer.Picked // the attempt in progress, if any
	start   time.Time       // when cur was picked
	tried   [Max]*balancer.Member
	n       int   // attempts made
	err     error // the last attempt's error, or the first pick's
	done    bool
	stopped bool
}

// Next picks the member of the next attempt and reports whether there is
// one; Member returns it. It returns false when the loop is over: an
// attempt was taken with Connected, Max attempts failed, a Final failure
// ended it, the proxy is stopping, or no member (or no untried member) is
// left.
func (a *Loop) Next() bool {
	if a.done || a.n == Max {
		a.done = true
		return false
	}
	var (
		p   balancer.Picked
		err error
	)
	switch {
	case a.n > 0:
		p, err = a.Group.PickNext(a.Key, a.tried[:a.n])
	case a.Sticky != "":
		p, err = a.Group.PickSticky(a.Sticky, a.Key)
	default:
		p, err = a.Group.Pick(a.Key)
	}
	if err != nil {
		if a.n == 0 {
			a.err = err
			a.Env.NoBackend()
		}
		a.done = true
		return false
	}
	a.cur, a.start = p, a.now()
	return true
}

// Member returns the member of the attempt in progress.
func (a *Loop) Member() *balancer.Member { return a.cur.Member }

// Fail ends the attempt in progress with err: it is Done with err (or
// with no error if the proxy is stopping, which ends the loop), reported
// and counted as f says, and the loop moves on unless f is Final.
func (a *Loop) Fail(err error, f Failure) {
	p := a.cur
	a.cur = balancer.Picked{}
	m := p.Member
	a.tried[a.n] = m
	a.n++
	a.err = err
	if a.stopping() {
		p.Done(balancer.DoneInfo{}) // not the member's doing
		return
	}
	p.Done(balancer.DoneInfo{Err: err})
	connect := f == Unreachable
	if connect {
		if h := a.Env.Health(a.Group); h != nil {
			h.ReportFailure(m.ID())
		}
	}
	a.Env.Failed(m, err, connect)
	if f == Final {
		a.done = true
	}
}

// Connected ends the loop with the attempt in progress: the caller goes
// on with its member and must end it with the Attempt's Done, once. It
// returns false, having ended the pick itself, if the proxy is stopping:
// the caller then closes what it dialed.
func (a *Loop) Connected() (Attempt, bool) {
	p := a.cur
	a.cur = balancer.Picked{}
	a.n++
	if a.stopping() {
		p.Done(balancer.DoneInfo{})
		return Attempt{}, false
	}
	a.done, a.err = true, nil
	return Attempt{
		p: p, g: a.Group, env: a.Env, start: a.start, now: a.Now, retried: a.n > 1,
	}, true
}

// Err returns why the loop ended without a member: the last attempt's
// error, or, if the first pick found none, the pick's (wrapping
// balancer.ErrNoBackend). It is nil after Connected.
func (a *Loop) Err() error { return a.err }

// Stopped reports whether the loop ended because Stop was done.
func (a *Loop) Stopped() bool { return a.stopped }

// stopping reports whether Stop is done, and if so ends the loop.
func (a *Loop) stopping() bool {
	if a.Stop == nil || a.Stop.Err() == nil {
		return false
	}
	a.done, a.stopped = true, true
	return true
}

func (a *Loop) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}
