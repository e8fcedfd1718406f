package netpoll

// Waker is what a parked connection's owner implements: usually the
// owner's own connection struct, so parking it stores one interface value
// and allocates nothing.
//
// The Poller calls Wake exactly once per successful Park that was not
// taken back by Unpark, on a goroutine of its own, after the connection
// has left the poller's set: from Wake on, the owner has the connection to
// itself again and may read it, park it again or close it.
type Waker interface {
	Wake(Reason)
}

// Reason says why a parked connection was handed back.
type Reason uint8

const (
	// Readable: the connection has data to read (or an error to report).
	Readable Reason = iota + 1
	// Hangup: the peer closed or reset the connection. Data it sent before
	// closing may still be waiting: a read returns it, then io.EOF.
	Hangup
	// Expired: the deadline given to Park passed with nothing to read.
	Expired
	// Closed: the Poller is closing.
	Closed
)

// String returns the reason's lowercase name.
func (r Reason) String() string {
	switch r {
	case Readable:
		return "readable"
	case Hangup:
		return "hangup"
	case Expired:
		return "expired"
	case Closed:
		return "closed"
	}
	return "unknown"
}
