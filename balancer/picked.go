package balancer

import "time"

// Picked is the result of a pick: the chosen member and the means to report
// the outcome, as grpc-go's PickResult.Done. Group.Pick, PickSticky and
// PickNext count the work as begun on the member (Member.Outstanding goes
// up by one); the caller must call Done exactly once when the work ends,
// whether it succeeded or not.
//
// Picked is a small value: returning it and calling Done allocate nothing.
// The zero Picked has a nil Member and its Done does nothing.
type Picked struct {
	// Member is the chosen member.
	Member *Member
	obs    Observer // the snapshot's picker if it observes outcomes; nil otherwise
}

// Done ends the work begun by the pick: Outstanding goes down by one, the
// outcome is recorded on the member (Member.Failures, Member.LastLatency),
// and a scheduler that learns from outcomes (an Observer) is told. Call it
// exactly once, when the connection closes or the request ends.
func (p Picked) Done(d DoneInfo) {
	m := p.Member
	if m == nil {
		return
	}
	m.End()
	if d.Err != nil {
		m.stats.failures.Add(1)
	}
	if d.Latency > 0 {
		m.stats.latency.Store(int64(d.Latency))
	}
	if p.obs != nil {
		p.obs.Observe(m, d)
	}
}

// DoneInfo is the outcome of one pick's work.
type DoneInfo struct {
	// Err is nil on success: a response head arrived, or the connection
	// was made.
	Err error
	// Latency is the time to the response head for HTTP, and the connect
	// time for TCP and UDP flows. It is 0 if unknown, as when Err is set
	// before any answer.
	Latency time.Duration
}

// Observer is implemented by Pickers that learn from outcomes, such as the
// latency-aware PeakEWMA: Picked.Done calls Observe with the member and the
// outcome. Observe is called concurrently, with members the picker was
// built with and, after PickSticky, possibly with members it was not (a
// draining member keeping its sessions), which it should ignore or handle;
// it must not block.
type Observer interface {
	Observe(m *Member, d DoneInfo)
}
