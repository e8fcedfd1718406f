// Package balancer chooses backend servers: server groups, the schedulers
// that pick among their members, and the seam for your own scheduler.
//
// A Group holds the members of one CLB server group — the default group, a
// virtual server group, or a primary/standby group — with each member's
// weight (1–65535, 100 by default), state (Ready, Drain or Maint) and
// health. Every change builds a new immutable snapshot whose Picker was
// made by the group's Scheduler, and publishes it with one atomic store;
// Pick loads the snapshot and asks the Picker, taking no lock and
// allocating nothing. This is the split grpc-go makes between a balancer
// and its pickers.
//
// A pick returns a Picked: the member, counted as having one more
// connection or request outstanding, and a Done method that reports the
// outcome (error, latency) once the work ends, as grpc-go's
// PickResult.Done. Least-connections scheduling balances on the
// outstanding counts, and schedulers that implement Observer learn from
// the outcomes.
//
// Built-in schedulers, by name (ParseScheduler, case-insensitive):
//
//   - wrr: smooth weighted round robin, as nginx's (WeightedRoundRobin);
//   - rr: round robin, weights ignored (RoundRobin);
//   - sch, tch, qch: consistent hashing of the source IP, the four-tuple or
//     the QUIC connection ID, on weighted [Maglev] lookup tables hashed
//     with xxhash (Maglev);
//   - hash: the same consistent hashing of a hash the caller computed from
//     the request (Key.Hash: a header, a cookie, the path…), falling back
//     to the source IP when there is none (Maglev with HashKey);
//   - wlc: weighted least connections by the power of two random choices
//     (LeastConnections);
//   - ewma: latency-aware, by the power of two choices over peak-EWMA
//     latency × outstanding work, as Finagle and Linkerd (PeakEWMA).
//
// The first six are the CLB's; hash and ewma go beyond it.
//
// Draining is a state, not a weight: SetState(id, Drain) stops new work
// while a member's connections and sticky sessions carry on, and Maint
// stops all work and tells health checkers to leave the member alone.
//
// Session persistence builds on PickSticky: it keeps a client on the
// member it was on while that member is healthy and in the tier taking
// traffic, even while it drains, and otherwise picks afresh, so a forged
// session can only ever land on a current member.
//
// When no member is healthy a group fails closed (ErrNoBackend) by default,
// or uses every Ready member with Config.FailOpen.
//
// To write your own scheduler, implement Scheduler and Picker and check them
// with the conformance kit in balancer/balancertest. See the package
// examples.
//
// [Maglev]: https://research.google/pubs/maglev-a-fast-and-reliable-software-network-load-balancer/
package balancer
