package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login limits (see sessions).
const (
	// SessionTTL is how long a login lasts.
	SessionTTL = 8 * time.Hour
	// maxSessions bounds the sessions kept: past it, logging in ends
	// the session that would expire first.
	maxSessions = 1024
	// loginBurst failed logins from one address are allowed at once,
	// then one more every loginEvery: a token of 16 bytes or more is
	// out of reach of guessing anyway; the limit keeps a guesser from
	// filling the log and the refusal counter at line rate.
	loginBurst = 5
	loginEvery = 10 * time.Second
	// maxLimited bounds the addresses whose failures are remembered;
	// past it the ones back at a full burst are forgotten, and if that
	// is not enough, all are.
	maxLimited = 4096
)

// session is one login: who logged in and the CSRF token its page sends.
type session struct {
	who     string
	csrf    string
	expires time.Time
}

// sessions holds a Server's logins, in memory (a restart logs everyone
// out), by the SHA-256 of their cookie so a map lookup's timing tells
// nothing of a cookie; and the failed-login limiters, by address (an
// IPv6 address by its /64, which one host usually owns whole).
//
// The zero value holds none. It is safe for concurrent use.
type sessions struct {
	mu       sync.Mutex
	byKey    map[[sha256.Size]byte]*session
	limiters map[netip.Prefix]*rate.Limiter
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for who at now and returns its cookie value.
func (ss *sessions) create(who string, now time.Time) (cookie string, s *session) {
	cookie = randomToken()
	s = &session{who: who, csrf: randomToken(), expires: now.Add(SessionTTL)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byKey == nil {
		ss.byKey = map[[sha256.Size]byte]*session{}
	}
	if len(ss.byKey) >= maxSessions {
		var first [sha256.Size]byte
		var soonest time.Time
		for k, o := range ss.byKey {
			if !now.Before(o.expires) {
				delete(ss.byKey, k)
			} else if soonest.IsZero() || o.expires.Before(soonest) {
				first, soonest = k, o.expires
			}
		}
		if len(ss.byKey) >= maxSessions {
			delete(ss.byKey, first)
		}
	}
	ss.byKey[sha256.Sum256([]byte(cookie))] = s
	return cookie, s
}

// lookup returns the session of cookie at now, or nil if there is none
// or it has expired.
func (ss *sessions) lookup(cookie string, now time.Time) *session {
	k := sha256.Sum256([]byte(cookie))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byKey[k]
	if s != nil && !now.Before(s.expires) {
		delete(ss.byKey, k)
		return nil
	}
	return s
}

// end ends the session of cookie, if any.
func (ss *sessions) end(cookie string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byKey, sha256.Sum256([]byte(cookie)))
}

// limited reports whether logins from addr are refused at now, having
// failed too often.
func (ss *sessions) limited(addr netip.Addr, now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	l := ss.limiters[sourceOf(addr)]
	return l != nil && l.TokensAt(now) < 1
}

// failed records a failed login from addr at now.
func (ss *sessions) failed(addr netip.Addr, now time.Time) {
	src := sourceOf(addr)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.limiters == nil {
		ss.limiters = map[netip.Prefix]*rate.Limiter{}
	}
	l := ss.limiters[src]
	if l == nil {
		if len(ss.limiters) >= maxLimited {
			for k, o := range ss.limiters {
				if o.TokensAt(now) >= loginBurst {
					delete(ss.limiters, k)
				}
			}
			if len(ss.limiters) >= maxLimited {
				clear(ss.limiters)
			}
		}
		l = rate.NewLimiter(rate.Every(loginEvery), loginBurst)
		ss.limiters[src] = l
	}
	l.AllowN(now, 1)
}

// sourceOf is the prefix logins from addr are limited by.
func sourceOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits) // cannot fail: bits fits the address
	return p
}
