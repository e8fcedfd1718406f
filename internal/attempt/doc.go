// Package attempt is the loop a proxy runs to get a working backend for one
// client connection, UDP flow or HTTP request: the first pick (the member
// the client was placed on before, if any, else the scheduler's choice),
// up to Max attempts with balancer.Group.PickNext over the members already
// tried (HAProxy's "retries 3" and redispatch), and, in one place, what
// every protocol must agree on:
//
//   - every pick ends with exactly one balancer.Picked.Done: the loop
//     calls it for the attempts that failed, the caller (through Attempt)
//     for the one that worked;
//   - passive health hears both outcomes: a member that could not be
//     reached is a failure, proof of a working member (an established TCP
//     connection, a UDP flow's first reply, an HTTP response head) a
//     success;
//   - a connect failure is counted, at the proxy and at the member, and a
//     client turned away because the first pick found nothing is counted
//     once, as no backend;
//   - an attempt that fails while the proxy stops, or after its client
//     left, is not the backend's fault: its Done carries no error, nothing
//     is reported, and no other member is tried.
//
// What differs between protocols stays with the caller: how to dial, and
// whether a failure may go to another member (a Failure kind). A caller
// drives the loop as an iterator, so its dial code keeps its own types and
// nothing is allocated:
//
//	a := attempt.Loop{Group: g, Key: k, Sticky: id, Stop: ctx, Env: env}
//	for a.Next() {
//		c, err := dial(a.Member())
//		if err != nil {
//			a.Fail(err, attempt.Unreachable)
//			continue
//		}
//		at, ok := a.Connected()
//		if !ok { // stopping
//			c.Close()
//			return
//		}
//		latency := at.Succeeded()
//		... use c ...
//		at.Done(balancer.DoneInfo{Latency: latency})
//		return
//	}
//	// a.Err(): no member could be had
package attempt
