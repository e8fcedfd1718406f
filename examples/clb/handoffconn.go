package main

import (
	"os"

	"github.com/lbkit/lbkit/quichandoff"
)

// handoffConn is a quichandoff.Conn that leaves the registry when it
// closes, and knows the one it replaces on its socket until the reload
// switches.
type handoffConn struct {
	*quichandoff.Conn
	q      *quicHandoff
	key    string
	parity int

	older    *os.File     // guarded by q.mu: the pair end to an older incarnation in this process; nil if none
	replaces *handoffConn // guarded by q.mu: retired when the reload switches; nil if none
}

func (c *handoffConn) Close() error {
	c.q.mu.Lock()
	if c.q.conns[c.key] == c {
		delete(c.q.conns, c.key)
	}
	older := c.older
	c.older = nil
	c.q.mu.Unlock()
	if older != nil {
		older.Close()
	}
	return c.Conn.Close()
}
