package attempt

import "github.com/lbkit/lbkit/balancer"

// Env is the proxy's side of the loop: where the loop counts and reports
// what happened. The proxy implements it on a long-lived value (a pointer
// to its listener, say), so a call allocates nothing. Its methods are
// called concurrently, by every client's loop.
type Env interface {
	// NoBackend counts a client turned away because its first pick found
	// no member.
	NoBackend()
	// Failed counts and logs a failed attempt on m. connect reports that
	// m could not be reached (a connect failure, counted at the proxy and
	// at the member); otherwise m failed after it was reached.
	Failed(m *balancer.Member, err error, connect bool)
	// Health returns the passive health checker of g's members, or nil
	// when g has none.
	Health(g *balancer.Group) Reporter
}

// Reporter is passive health checking as the loop sees it;
// *health.Checker implements it.
type Reporter interface {
	ReportSuccess(id string)
	ReportFailure(id string)
}
