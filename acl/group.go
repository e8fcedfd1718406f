package acl

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/gaissmai/bart"
	"github.com/lbkit/lbkit/internal/cfgerr"
)

// MaxNameLen is the longest [Group] name accepted, in bytes.
const MaxNameLen = 64

// persistMax is the batch size up to which an update copies only the trie
// paths it touches (InsertPersist/DeletePersist, O(k·depth)); a larger
// batch clones the table once and edits the clone in place (O(n+k)).
const persistMax = 64

// Group is a named, live-updatable set of IPv4 or IPv6 entries that
// listeners use as a whitelist or blacklist through a [Policy].
//
// A group holds one address family, fixed by [NewGroup]; adding an entry of
// the other family is an error. Duplicate and overlapping entries are
// allowed: a source matches if any entry covers it. The entries are kept in
// a [bart] multibit trie, so a match costs tens of nanoseconds at most,
// bounded by the trie depth (4 levels for IPv4, 16 for IPv6) rather than
// by the group's size.
//
// Every update (Add, Remove, Replace) validates its whole batch first and
// applies nothing if any entry is refused. It then builds a new immutable
// snapshot of the trie and publishes it with one atomic store; checks load
// that snapshot and never lock, so a check sees the group either wholly
// before or wholly after an update. Updates are serialized by a mutex.
//
// The zero value is not usable; create groups with [NewGroup]. Most callers
// want NewGroup, then [NewPolicy] for each listener that uses the group.
//
// A Group is safe for concurrent use and must not be copied.
//
// Errors returned by its methods are *[ConfigError]; a family mismatch
// wraps [ErrFamily] and removing an absent prefix wraps [ErrNotFound].
type Group struct {
	name   string
	family Family

	// Updates are serialized by mu. Entries are kept by prefix, each with
	// its insertion number, so Remove costs O(k) for k prefixes rather than
	// a scan of the whole group; Entries sorts them back into order.
	mu    sync.Mutex
	byPfx map[netip.Prefix][]added // guarded by mu; never holds an empty slice
	n     int                      // guarded by mu; entries, counting duplicates
	seq   uint64                   // guarded by mu; insertion counter

	snap atomic.Pointer[snapshot] // what checks read
}

// added is one entry's comment and insertion number.
type added struct {
	seq     uint64
	comment string
}

// snapshot is an immutable view of a group's entries.
//
// The table is a bart.Fast rather than a Table or Lite: Fast trades memory
// (a 256-byte rank cache per trie node) for ~35% faster Contains lookups
// (measured 4.7 ns against 7.5 ns for Lite at 100k IPv4 prefixes), and ACL
// checks run on every accepted connection or datagram while updates are
// rare.
type snapshot struct {
	table *bart.Fast[struct{}]
	empty bool
}

// GroupConfig configures a [Group]. Both fields are required: a group has
// no default name, and no default family, because guessing one would turn
// every entry of the other family into an error.
type GroupConfig struct {
	// Name is 1 to [MaxNameLen] bytes of Unicode letters, digits and the
	// punctuation "-_.:/" (no spaces).
	Name string
	// Family is [IPv4] or [IPv6]; every entry must be of it.
	Family Family
}

// NewGroup returns a group configured by cfg holding entries, or a
// *[ConfigError] naming the first refused field or entry. Every entry must
// be valid (see [Entry]) and of cfg.Family.
func NewGroup(cfg GroupConfig, entries ...Entry) (*Group, error) {
	if reason := nameProblem(cfg.Name); reason != "" {
		return nil, cfgerr.New(pkg, "Name", cfg.Name, reason)
	}
	if !cfg.Family.valid() {
		return nil, cfgerr.New(pkg, "Family", cfg.Family, "want IPv4 or IPv6")
	}
	g := &Group{name: cfg.Name, family: cfg.Family}
	if err := g.check(entries); err != nil {
		return nil, err
	}
	g.replace(entries)
	return g, nil
}

// nameProblem returns why name is not a valid group name, or "".
func nameProblem(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("longer than %d bytes", MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return "not valid UTF-8"
	}
	for _, r := range name {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r):
		case r == '-', r == '_', r == '.', r == ':', r == '/':
		default:
			return fmt.Sprintf("character %q not allowed; use letters, digits and -_.:/", r)
		}
	}
	return ""
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Family returns the group's address family.
func (g *Group) Family() Family { return g.family }

// Len returns the number of entries, counting duplicates.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// Entries returns a copy of the group's entries in the order they were
// added.
func (g *Group) Entries() []Entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	type ordered struct {
		seq uint64
		e   Entry
	}
	all := make([]ordered, 0, g.n)
	for p, as := range g.byPfx {
		for _, a := range as {
			all = append(all, ordered{a.seq, Entry{Prefix: p, Comment: a.comment}})
		}
	}
	slices.SortFunc(all, func(x, y ordered) int { return cmp.Compare(x.seq, y.seq) })
	out := make([]Entry, len(all))
	for i, o := range all {
		out[i] = o.e
	}
	return out
}

// Contains reports whether any entry covers addr. An IPv4-mapped IPv6
// address is unmapped first, so ::ffff:10.1.2.3 is covered by 10.0.0.0/8.
// It ignores the whitelist/blacklist mode and the empty-group rule; a
// listener wants [Policy.Allow] instead.
func (g *Group) Contains(addr netip.Addr) bool {
	return g.snap.Load().table.Contains(addr.Unmap())
}

// Add appends entries to the group. If any entry is invalid or of the
// other family, Add returns its error and changes nothing.
func (g *Group) Add(entries ...Entry) error {
	if err := g.check(entries); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()

	var fresh []netip.Prefix
	for _, e := range entries {
		if len(g.byPfx[e.Prefix]) == 0 {
			fresh = append(fresh, e.Prefix)
		}
		g.add(e)
	}
	g.publish(fresh, nil)
	return nil
}

// Remove deletes every entry whose prefix equals one of prefixes
// (comments are ignored). If any prefix is invalid, of the other family or
// not in the group, Remove returns its error and changes nothing.
func (g *Group) Remove(prefixes ...netip.Prefix) error {
	g.mu.Lock()
	defer g.mu.Unlock()

	drop := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		if err := g.checkOne(Entry{Prefix: p}); err != nil {
			return err
		}
		if len(g.byPfx[p]) == 0 {
			return cfgerr.Wrap(pkg, "Entry", p, fmt.Sprintf("not in group %q", g.name), ErrNotFound)
		}
		drop[p] = true
	}

	gone := make([]netip.Prefix, 0, len(drop))
	for p := range drop {
		g.n -= len(g.byPfx[p])
		delete(g.byPfx, p)
		gone = append(gone, p)
	}
	g.publish(nil, gone)
	return nil
}

// Replace swaps the group's whole set of entries for entries. If any entry
// is invalid or of the other family, Replace returns its error and changes
// nothing. Replace with no entries empties the group, which then allows
// every source in both modes.
func (g *Group) Replace(entries ...Entry) error {
	if err := g.check(entries); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.replace(entries)
	return nil
}

// check validates a batch without touching the group.
func (g *Group) check(entries []Entry) error {
	for _, e := range entries {
		if err := g.checkOne(e); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) checkOne(e Entry) error {
	if reason := e.problem(); reason != "" {
		return cfgerr.New(pkg, "Entry", e.String(), reason)
	}
	if f := e.family(); f != g.family {
		return cfgerr.Wrap(pkg, "Entry", e.String(),
			fmt.Sprintf("%s entry in %s group %q", f, g.family, g.name), ErrFamily)
	}
	return nil
}

// replace rebuilds all state from entries; the caller holds mu (or owns g
// exclusively) and has validated entries.
func (g *Group) replace(entries []Entry) {
	t := new(bart.Fast[struct{}])
	g.byPfx = make(map[netip.Prefix][]added, len(entries))
	g.n = 0
	for _, e := range entries {
		g.add(e)
		t.Insert(e.Prefix, struct{}{})
	}
	g.snap.Store(&snapshot{table: t, empty: g.n == 0})
}

// add records e; the caller holds mu and updates the table.
func (g *Group) add(e Entry) {
	g.seq++
	g.byPfx[e.Prefix] = append(g.byPfx[e.Prefix], added{g.seq, e.Comment})
	g.n++
}

// publish stores a snapshot derived from the current one with prefixes
// inserted and deleted. The caller holds mu. The current snapshot's table
// is never modified: readers may be using it.
func (g *Group) publish(insert, del []netip.Prefix) {
	t := g.snap.Load().table
	if len(insert)+len(del) > persistMax {
		t = t.Clone()
		for _, p := range insert {
			t.Insert(p, struct{}{})
		}
		for _, p := range del {
			t.Delete(p)
		}
	} else {
		for _, p := range insert {
			t = t.InsertPersist(p, struct{}{})
		}
		for _, p := range del {
			t = t.DeletePersist(p)
		}
	}
	g.snap.Store(&snapshot{table: t, empty: g.n == 0})
}
