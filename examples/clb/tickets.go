package main

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/lbkit/lbkit/listener"
)

// ticketRotation is how often the process's own session-ticket key
// changes, as crypto/tls rotates its automatic keys. A ticket stays
// valid for one rotation more (the previous key is kept behind the new
// one), and the TLS policy limits every session to 300 s anyway.
const ticketRotation = 24 * time.Hour

// ticketKeyring holds the process's own TLS session-ticket keys, the
// newest first: what https listeners use when the configuration's Fleet
// gives none. Unlike crypto/tls's automatic keys they outlive the
// process — a binary upgrade hands them to the successor, which rotates
// them once — so sessions resume across upgrades. Safe for concurrent
// use.
type ticketKeyring struct {
	mu   sync.Mutex
	keys [][32]byte
}

// newTicketKeyring returns a keyring with a fresh key first and, behind
// it, the newest of inherited (a predecessor's keys, newest first).
func newTicketKeyring(inherited [][]byte) (*ticketKeyring, error) {
	k := &ticketKeyring{}
	if _, err := k.rotate(); err != nil {
		return nil, err
	}
	if len(inherited) > 0 {
		k.keys = append(k.keys, [32]byte(inherited[0]))
	}
	return k, nil
}

// current returns the keys, newest first.
func (k *ticketKeyring) current() [][32]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys
}

// rotate puts a fresh key first and keeps only the one that was first
// behind it; it returns the new keys.
func (k *ticketKeyring) rotate() ([][32]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	next := [][32]byte{fresh}
	if len(k.keys) > 0 {
		next = append(next, k.keys[0])
	}
	k.keys = next // a new slice: current's callers keep theirs
	return next, nil
}

// rotateTicketKeys rotates the process's session-ticket keys and gives
// them to every running https listener that uses them (one whose
// configuration's Fleet gives no SessionTicketKeys).
func (c *control) rotateTicketKeys() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys, err := c.a.env.tickets.rotate()
	if err != nil {
		return err
	}
	if fl := c.a.plan.file.Fleet; fl != nil && fl.ticketKeys != nil {
		return nil
	}
	for _, r := range c.a.running {
		if r.spec.cfg.Protocol != listener.HTTPS {
			continue
		}
		if err := r.l.SetSessionTicketKeys(keys); err != nil {
			return err
		}
		r.spec.cfg.HTTP.SessionTicketKeys = keys
	}
	return nil
}
