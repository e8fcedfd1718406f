// Package balancertest is a conformance kit for balancer.Scheduler
// implementations: the built-in ones and yours.
//
// TestScheduler runs every check as a named subtest of your test, each
// bounded by a timeout so that a scheduler that deadlocks fails instead of
// hanging, and each gathering all the problems it finds into one failure,
// in the manner of golang.org/x/net/nettest.TestConn and
// testing/fstest.TestFS. Check runs the same checks outside a test and
// returns the problems as one error.
//
// The checks drive the scheduler through a real balancer.Group:
//
//   - contract: Pick returns only members its Build was given;
//   - empty: no members, only draining members or only unhealthy members
//     give balancer.ErrNoBackend;
//   - weights: over many picks with varied keys, each member's share of
//     picks is within Options.Tolerance of its share of the total weight
//     (of 1/N when Options.IgnoresWeights is set);
//   - drain: draining, maintenance and unhealthy members are never
//     picked, including right after they become so;
//   - concurrent: picks from several goroutines while another changes the
//     group return current members or ErrNoBackend (run under -race);
//   - consistent (Options.Consistent): the same key picks the same member,
//     across rebuilds too, and removing or adding one of N members moves
//     only about 1/N of the keys (at most 1.5/N).
//
// See the package example for a user-written scheduler under the kit.
package balancertest
