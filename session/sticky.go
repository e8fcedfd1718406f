package session

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Group is a server group whose members a Sticky's tokens may name (see
// Config.Groups): its member IDs, and when they change. *balancer.Group
// satisfies it; it is defined here so that session does not import
// balancer.
type Group interface {
	// IDs returns every member's ID.
	IDs() []string
	// Changed returns a channel closed at the group's next change.
	Changed() <-chan struct{}
}

// Sticky keeps HTTP clients on one backend with a cookie, in [Insert] or
// [Rewrite] mode. It maps cookies to backend IDs and back; it never picks a
// backend: the listener asks its server group for the member a cookie
// names (balancer's Group.PickSticky), which re-checks that the member is
// current and healthy.
//
// The cookie carries an opaque token (see [Sticky.Encode]): an HMAC-derived
// tag of the backend ID, the issue time and a MAC. Decoding maps the tag
// back to an ID through the set of known backends — the members of
// Config.Groups, which the Sticky follows on its own, or the IDs given to
// Config.Backends and [Sticky.SetBackends] — so a token never reveals an
// ID or an address, and
// a token for a backend not in the set, or one that is forged, truncated,
// altered, too old or made with another key, decodes as "no session".
//
// Most callers want [Sticky.Request] on each request and [Sticky.Response]
// on each response. Keys and backends change through SetKeys, SetBackends
// and the groups' changes, which build a new immutable table and publish
// it with one atomic store; the per-request methods only load it, take no
// lock and (Lookup, Decode) allocate nothing. A group's change is noticed
// by the first call after it (a non-blocking look at its Changed channel),
// which rebuilds the table: no goroutine, nothing to stop.
//
// Create a Sticky with [New]. A Sticky is safe for concurrent use and must
// not be copied.
type Sticky struct {
	mode     Mode
	name     string
	timeout  int64  // seconds; 0: token age not checked (Rewrite)
	attrs    string // Insert cookie attributes after the value, without SameSite/Secure
	sameSite http.SameSite
	now      func() time.Time

	groups []Group // followed, from Config.Groups; nil with Config.Backends

	mu  sync.Mutex // serializes SetKeys, SetBackends and refreshes
	tab atomic.Pointer[table]
}

// table is what the request path reads: immutable once published.
type table struct {
	keys  []*keyState      // current key first, then the previous key if any
	byTag []map[tag]string // per key: tag → backend ID
	tags  map[string]tag   // backend ID → tag under the current key
	ids   []string         // the known IDs
	raw   [2][]byte        // the keys as configured, to rebuild on SetBackends

	changed []<-chan struct{} // per followed group: closed when ids may be stale
}

// Session is what a request's cookie said. The zero value means "no
// session".
type Session struct {
	// ID is the backend the cookie names, "" if none. It is one of the
	// IDs given to SetBackends, but the backend may have become unhealthy
	// since: pass it to the group's PickSticky.
	ID string
	// Issued is when the token was issued (whole seconds), zero if none.
	Issued time.Time

	stale bool // decoded with the previous key: re-issue under the current one
}

// New returns a Sticky for cfg, or a *ConfigError naming the first refused
// field. Config.Groups or Config.Backends is required.
func New(cfg Config) (*Sticky, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sticky{
		mode:     cfg.Mode,
		name:     cfg.CookieName,
		timeout:  int64(cfg.CookieTimeout / time.Second),
		sameSite: cfg.SameSite,
		now:      cfg.Now,
		groups:   cfg.Groups,
	}
	if s.mode == Rewrite {
		s.timeout = 0
	} else {
		s.attrs = "; Path=/; Max-Age=" + strconv.FormatInt(s.timeout, 10) + "; HttpOnly"
	}
	key := cfg.Key
	if key == nil {
		key = randomKey()
	}
	ids, changed := cfg.Backends, s.watch()
	if s.groups != nil {
		ids = groupIDs(s.groups)
	}
	tab, err := buildTable(key, cfg.PreviousKey, ids)
	if err != nil {
		return nil, err
	}
	tab.changed = changed
	s.tab.Store(tab)
	return s, nil
}

// watch returns the groups' Changed channels, read before their IDs so
// that a change in between is noticed.
func (s *Sticky) watch() []<-chan struct{} {
	var chs []<-chan struct{}
	for _, g := range s.groups {
		chs = append(chs, g.Changed())
	}
	return chs
}

func groupIDs(groups []Group) []string {
	var ids []string
	for _, g := range groups {
		ids = append(ids, g.IDs()...)
	}
	return ids
}

// table returns the current table, first rebuilding it if a followed
// group changed since it was built. While another call rebuilds, it
// returns the old table rather than wait: the change raced with the
// request either way.
func (s *Sticky) table() *table {
	t := s.tab.Load()
	for _, ch := range t.changed {
		select {
		case <-ch:
			return s.refresh(t)
		default:
		}
	}
	return t
}

func (s *Sticky) refresh(old *table) *table {
	if !s.mu.TryLock() {
		return old
	}
	defer s.mu.Unlock()
	if cur := s.tab.Load(); cur != old {
		return cur
	}
	changed := s.watch()
	ids := groupIDs(s.groups)
	t, err := old, error(nil)
	if !sameIDs(old, ids) { // most changes are of health or weight, not membership
		t, err = buildTable(old.raw[0], old.raw[1], ids)
	}
	if t == old || err != nil {
		// Same members, or an ID the table refuses (empty): keep the
		// tags, and look again at the next change.
		t = &table{keys: old.keys, byTag: old.byTag, tags: old.tags, ids: old.ids, raw: old.raw}
	}
	t.changed = changed
	s.tab.Store(t)
	return t
}

func buildTable(key, prev []byte, ids []string) (*table, error) {
	if err := checkKey("Key", key); err != nil {
		return nil, err
	}
	t := &table{raw: [2][]byte{key, prev}, keys: []*keyState{newKeyState(key)}}
	if prev != nil {
		if err := checkKey("PreviousKey", prev); err != nil {
			return nil, err
		}
		t.keys = append(t.keys, newKeyState(prev))
	}
	t.tags = make(map[string]tag, len(ids))
	for _, id := range ids {
		if id == "" {
			return nil, configErr("Backends", id, "empty backend ID")
		}
		t.tags[id] = tag{}
	}
	for id := range t.tags {
		t.ids = append(t.ids, id)
	}
	for k, ks := range t.keys {
		m := make(map[tag]string, len(t.ids))
		for _, id := range t.ids {
			tg := ks.tagOf(id)
			if other, dup := m[tg]; dup {
				// 96-bit tags: this does not happen by chance.
				return nil, configErr("Backends", id, "token tag collides with backend "+strconv.Quote(other))
			}
			m[tg] = id
			if k == 0 {
				t.tags[id] = tg
			}
		}
		t.byTag = append(t.byTag, m)
	}
	return t, nil
}

// sameIDs reports whether ids (possibly repeated) are exactly t's IDs.
func sameIDs(t *table, ids []string) bool {
	n := 0
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if _, ok := t.tags[id]; !ok {
			return false
		}
		if !seen[id] {
			seen[id] = true
			n++
		}
	}
	return n == len(t.tags)
}

// SetBackends replaces the set of backend IDs that tokens may name, for a
// Sticky made with Config.Backends; one that follows Config.Groups keeps
// its set itself, and SetBackends returns a *ConfigError. Tokens of a
// backend left out decode as "no session"; a backend added later is
// honoured again from then on. On error nothing changes.
func (s *Sticky) SetBackends(ids ...string) error {
	if s.groups != nil {
		return configErr("Backends", "SetBackends", "the Sticky follows Config.Groups")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.tab.Load()
	t, err := buildTable(old.raw[0], old.raw[1], ids)
	if err != nil {
		return err
	}
	s.tab.Store(t)
	return nil
}

// SetKeys replaces the keys, as Config.Key and Config.PreviousKey (which
// may be nil). To rotate, call SetKeys(next, current); tokens under current
// keep working and are re-issued under next as clients come back. On error
// nothing changes.
func (s *Sticky) SetKeys(key, previous []byte) error {
	if key == nil {
		return keyErr("Key", key, "required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.tab.Load()
	t, err := buildTable(key, previous, old.ids)
	if err != nil {
		return err
	}
	t.changed = old.changed
	s.tab.Store(t)
	return nil
}

// Mode returns the configured mode.
func (s *Sticky) Mode() Mode { return s.mode }

// CookieName returns the cookie name in use.
func (s *Sticky) CookieName() string { return s.name }

// Encode is EncodeAt(id, Config.Now()).
func (s *Sticky) Encode(id string) string { return s.EncodeAt(id, s.now()) }

// EncodeAt returns the token naming backend id, issued at now, under the
// current key: TokenLen characters of base64url. It reveals neither the ID
// nor any address. An id not in the backend set still gets a token, which
// decodes once SetBackends includes id.
func (s *Sticky) EncodeAt(id string, now time.Time) string {
	t := s.table()
	tg, ok := t.tags[id]
	if !ok {
		tg = t.keys[0].tagOf(id)
	}
	return t.keys[0].seal(tg, clampSeconds(now.Unix()))
}

func clampSeconds(sec int64) uint32 {
	if sec < 0 {
		return 0
	}
	if sec > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(sec)
}

// Decode is DecodeAt(token, Config.Now()).
func (s *Sticky) Decode(token string) (id string, ok bool) {
	return s.DecodeAt(token, s.now())
}

// DecodeAt returns the backend a token names. ok is false — "no session" —
// for anything EncodeAt did not produce under the current or previous key
// for a backend in the set, and, in Insert mode, for a token issued
// CookieTimeout or more before now (or more than a minute after it). It
// allocates nothing: id is the string given to SetBackends.
func (s *Sticky) DecodeAt(token string, now time.Time) (id string, ok bool) {
	sess, ok := s.decode(s.table(), token, now.Unix())
	return sess.ID, ok
}

// maxSkew is how far in the future an issue time may lie: another process
// sharing the key may run a slightly fast clock.
const maxSkew = 60

func (s *Sticky) decode(t *table, token string, now int64) (Session, bool) {
	var raw [rawLen]byte
	if !unpack(token, &raw) {
		return Session{}, false
	}
	for k, ks := range t.keys {
		tg, issued, ok := ks.open(&raw)
		if !ok {
			continue
		}
		if s.timeout > 0 {
			age := now - int64(issued)
			if age >= s.timeout || age < -maxSkew {
				return Session{}, false
			}
		}
		id, ok := t.byTag[k][tg]
		if !ok {
			return Session{}, false
		}
		return Session{ID: id, Issued: time.Unix(int64(issued), 0), stale: k > 0}, true
	}
	return Session{}, false
}
