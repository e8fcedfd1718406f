package netpoll

import "errors"

// ErrClosed is returned by Park after Close.
var ErrClosed = errors.New("netpoll: poller closed")
