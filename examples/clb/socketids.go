package main

import (
	"sync/atomic"

	"github.com/lbkit/lbkit/quichandoff"
	"github.com/quic-go/quic-go"
)

// socketIDs issues the connection IDs of one listener's HTTP/3: those of
// the generator attach chose, at the listener's latest start, for the
// parity its socket takes. quic-go asks for IDs only once the socket is
// attached. Safe for concurrent use; it allocates nothing.
type socketIDs struct {
	inner quic.ConnectionIDGenerator // QUIC-LB's, or nil
	gen   atomic.Pointer[quichandoff.Generator]
}

func (s *socketIDs) GenerateConnectionID() (quic.ConnectionID, error) {
	return s.gen.Load().GenerateConnectionID()
}

func (s *socketIDs) ConnectionIDLen() int { return s.gen.Load().ConnectionIDLen() }
