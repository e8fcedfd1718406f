package main

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// filter is the request filter: rules checked in order, the first that
// fails answers the request. It is safe for concurrent use.
type filter struct {
	methods   map[string]bool
	maxHeader int
	limit     rate.Limit
	burst     int

	// now is the clock of the rate limiter; tests replace it.
	now func() time.Time
	// log, if set, is told of every blocked request.
	log func(r *http.Request, code int, reason string)

	mu      sync.Mutex
	clients map[netip.Addr]*bucket
	sweptAt time.Time
}

// bucket is one client's token bucket and when it was last used.
type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// idleBucket is how long a client's bucket is kept without requests. A
// bucket idle this long has refilled anyway, so forgetting it changes
// nothing for the client.
const idleBucket = time.Minute

func newFilter(methods []string, maxHeader int, limit rate.Limit, burst int) *filter {
	f := &filter{
		methods:   map[string]bool{},
		maxHeader: maxHeader,
		limit:     limit,
		burst:     burst,
		now:       time.Now,
		clients:   map[netip.Addr]*bucket{},
	}
	for _, m := range methods {
		f.methods[strings.ToUpper(strings.TrimSpace(m))] = true
	}
	return f
}

// Middleware is the listener's HTTPOptions.Middleware: it answers blocked
// requests itself and passes the rest to next, the proxy.
func (f *filter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, reason, retry := f.check(r); code != 0 {
			if f.log != nil {
				f.log(r, code, reason)
			}
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			}
			http.Error(w, "blocked: "+reason, code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check returns 0 if r may pass, or the status, the reason and, for 429,
// how long until the client may retry.
func (f *filter) check(r *http.Request) (code int, reason string, retry time.Duration) {
	// The rate limit comes first: blocked requests cost the client too,
	// or probing the other rules would be free.
	if d, ok := f.allow(clientIP(r)); !ok {
		return http.StatusTooManyRequests, "rate limit", d
	}
	if !f.methods[r.Method] {
		return http.StatusForbidden, "method " + r.Method + " not allowed", 0
	}
	if traverses(r.URL.RawPath) || traverses(r.URL.Path) || traverses(unescapeAll(r.URL.RawQuery)) {
		return http.StatusForbidden, "path traversal", 0
	}
	for name, values := range r.Header {
		for _, v := range values {
			if len(name)+len(v) > f.maxHeader {
				return http.StatusForbidden, "header " + name + " over " + strconv.Itoa(f.maxHeader) + " bytes", 0
			}
		}
	}
	return 0, "", 0
}

// traverses reports whether s climbs a directory: "../" or "..\",
// or a path ending in "/..".
func traverses(s string) bool {
	return strings.Contains(s, "../") || strings.Contains(s, `..\`) || s == ".." || strings.HasSuffix(s, "/..")
}

// unescapeAll undoes percent-encoding repeatedly, so that "%252e%252e%252f"
// is seen as "../".
func unescapeAll(s string) string {
	for range 3 {
		u, err := url.QueryUnescape(s)
		if err != nil || u == s {
			return s
		}
		s = u
	}
	return s
}

// allow takes a token from ip's bucket; if there is none it returns how
// long until there will be.
func (f *filter) allow(ip netip.Addr) (time.Duration, bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.sweptAt) > idleBucket {
		for a, b := range f.clients {
			if now.Sub(b.seen) > idleBucket {
				delete(f.clients, a)
			}
		}
		f.sweptAt = now
	}
	b := f.clients[ip]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(f.limit, f.burst)}
		f.clients[ip] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// clientIP is the address the request came from (the listener's ACL has
// already passed it); a bad RemoteAddr maps to the zero address, one bucket.
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
