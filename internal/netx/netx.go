// Package netx holds the small network helpers the listener and the HTTP
// proxy share: the accept loop and the timeout test.
package netx

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// AcceptLoop calls accept until the listener behind it is closed, giving
// each connection to handle. Other accept errors (out of file
// descriptors and the like) are logged and waited out, backing off as
// net/http does, so the listener keeps serving once they pass.
func AcceptLoop[C net.Conn](log *slog.Logger, accept func() (C, error), handle func(C)) {
	var backoff time.Duration
	for {
		c, err := accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		handle(c)
	}
}

// IsTimeout reports whether err is a network timeout (a deadline).
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
