//go:build !linux

package netpoll

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// errUnsupported is what every entry point returns off Linux.
var errUnsupported = fmt.Errorf("netpoll: %w on %s", errors.ErrUnsupported, runtime.GOOS)

// Poller would watch idle connections without a goroutine each; off
// Linux it cannot be made: New returns an error wrapping
// errors.ErrUnsupported, and callers keep a goroutine per connection.
type Poller struct{}

// New returns an error wrapping errors.ErrUnsupported off Linux.
func New() (*Poller, error) { return nil, errUnsupported }

// Park returns an error wrapping errors.ErrUnsupported off Linux.
func (p *Poller) Park(fd int, deadline time.Time, w Waker) (Ticket, error) {
	return 0, errUnsupported
}

// Unpark reports false off Linux: nothing is ever parked.
func (p *Poller) Unpark(t Ticket) bool { return false }

// Len returns 0 off Linux.
func (p *Poller) Len() int { return 0 }

// Close returns nil off Linux.
func (p *Poller) Close() error { return nil }
