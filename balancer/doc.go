// Package balancer chooses backend servers: server groups, the schedulers
// that pick among their members, and the seam for your own scheduler.
//
// A Group holds the members of one CLB server group — the default group, a
// virtual server group, or a primary/standby group — with each member's
// weight (0–100, 0 meaning drain) and health. Every change builds a new
// immutable snapshot whose Picker was made by the group's Scheduler, and
// publishes it with one atomic store; Pick loads the snapshot and asks the
// Picker, taking no lock and allocating nothing. This is the split grpc-go
// makes between a balancer and its pickers.
//
// Built-in schedulers, by their CLB names (ParseScheduler):
//
//   - wrr: smooth weighted round robin, as nginx's (WeightedRoundRobin);
//   - rr: round robin, weights ignored except 0 (RoundRobin);
//   - sch, tch, qch: consistent hashing of the source IP, the four-tuple or
//     the QUIC connection ID, on weighted [Maglev] lookup tables hashed
//     with xxhash (Maglev);
//   - wlc: weighted least connections by the power of two random choices
//     (LeastConnections).
//
// Callers that track connections report them with Member.Begin and
// Member.End; wlc balances on those counts, and they are the group's
// per-backend connection counters.
//
// Session persistence builds on PickSticky: it keeps a client on the
// member it was on while that member is healthy and in the tier taking
// traffic, even at weight 0, and otherwise picks afresh, so a forged
// session can only ever land on a current member.
//
// When no member is healthy a group fails closed (ErrNoBackend) by default,
// or uses every member of weight > 0 with Config.FailOpen.
//
// To write your own scheduler, implement Scheduler and Picker and check them
// with the conformance kit in balancer/balancertest. See the package
// examples.
//
// [Maglev]: https://research.google/pubs/maglev-a-fast-and-reliable-software-network-load-balancer/
package balancer
