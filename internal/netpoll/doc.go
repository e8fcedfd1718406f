// Package netpoll parks idle connections without a goroutine each, so an
// idle keep-alive connection costs its owner's struct and a few dozen
// bytes here instead of a goroutine blocked in Read (its stack alone is
// 2 KiB or more) and a read buffer.
//
// A Poller owns one epoll set and one goroutine waiting on it, as
// [cloudwego/netpoll] and [gnet] do. The set is itself waited on in Go's
// netpoller, like any socket, so that goroutine holds no thread while it
// waits and is woken as cheaply as a goroutine blocked in Read. An owner that has served a request
// and found nothing more to read parks the connection with Poller.Park
// (its descriptor, from FD once at accept time; a deadline; and a
// Waker, usually the owner's connection struct itself). When the
// connection becomes readable, the peer hangs up, or the deadline passes,
// the poller takes it out of the set and calls Waker.Wake on a new
// goroutine, which reads the next request and may park again. Poller.Close
// hands every parked connection back with Closed. The package Example
// shows the cycle on loopback.
//
// # Ownership
//
// From Park until Wake, or until Poller.Unpark reports true, the
// connection belongs to the poller, and its owner must neither read nor
// close it. Reading would race the readiness the poller waits for.
// Closing would free the descriptor number for the next accepted
// connection while the poller still watches it: that connection's events
// would wake the wrong owner, and removing the stale registration would
// remove the new one. The poller removes a descriptor from its set before
// Wake runs and before Unpark returns true, so from either moment on the
// owner may close it. Unpark and Wake exclude each other: for each Park
// exactly one of them hands the connection back.
//
// Park must only be given a connection whose owner holds no bytes of it
// already read: epoll sees the socket, not the owner's buffers, so a
// request sitting in a bufio.Reader (or in a TLS record that crypto/tls
// has decrypted but not yet returned) would wait for the next packet or
// the deadline.
//
// # Events
//
// Descriptors are watched level-triggered with EPOLLONESHOT: bytes that
// arrived before Park fire at once, and the first event disarms the
// descriptor, so more bytes arriving before the poll goroutine removes it
// produce no second event. (Edge-triggered watching would miss bytes that
// came before Park, and still fire again for each new packet.) Each event
// carries the slot and generation of its Park, so an event that lost to
// Unpark is recognised and dropped.
//
// # Deadlines
//
// There is no timer per connection: deadlines sit in a min-heap that the
// poll goroutine sweeps, woken at the earliest one by the read deadline
// it keeps on the epoll set.
// Deadlines are rounded up to ticks of 250 ms, so a connection expires
// within one tick after its deadline, never before, and the poller wakes
// at most four times a second to expire connections however many there
// are.
//
// Off Linux, New returns an error wrapping errors.ErrUnsupported, and the
// caller keeps a goroutine per connection.
//
// [cloudwego/netpoll]: https://github.com/cloudwego/netpoll
// [gnet]: https://github.com/panjf2000/gnet
package netpoll
