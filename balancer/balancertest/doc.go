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
//   - contract: Pick, on pickers built directly over one, two and three
//     members, returns only members its Build was given, and never nil.
//     The Picker contract lets Pick return nil only when it cannot choose
//     (the group then reports balancer.ErrNoBackend); the kit's members
//     are idle, healthy and ready, so every check counts a nil there as a
//     problem;
//   - empty: no members, only draining members, only unhealthy members
//     or one unhealthy member give balancer.ErrNoBackend;
//   - weights: in groups of one, two (weights 25 and 75) and five members,
//     over many picks with varied keys, each member's share of picks is
//     within Options.Tolerance of its share of the total weight (of 1/N
//     when Options.IgnoresWeights is set). The tolerance is relative: at
//     the default 5%, a member due 10% of the picks must get 9.5–10.5%;
//   - drain: draining, maintenance and unhealthy members are never
//     picked, including right after they become so, and of two members
//     with one draining the other gets every pick;
//   - concurrent: picks from several goroutines while another changes the
//     group return current members or ErrNoBackend (run under -race);
//   - consistent (Options.Consistent): the same key picks the same member,
//     across rebuilds too, and removing or adding one of N members moves
//     only about 1/N of the keys (at most 1.5/N).
//
// TestScheduler reports a failing check at the line of your test that
// called it. A panic in Build or Pick is that check's problem, reported
// with the stack that raised it; it does not crash the test binary.
//
// See the package example for a user-written scheduler under the kit.
package balancertest
