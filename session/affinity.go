package session

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"sync"
	"time"
)

const (
	// DefaultMaxEntries is AffinityConfig.MaxEntries when zero.
	DefaultMaxEntries = 1 << 18
	minEntries        = shardCount
	maxEntries        = 1 << 26
	shardCount        = 64
)

// AffinityConfig configures an [Affinity] table. The zero value is a table
// that is off: it remembers nothing, as the CLB's PersistenceTimeout 0.
type AffinityConfig struct {
	// PersistenceTimeout is how long a source address stays bound to its
	// backend after its last Set or Touch. Zero turns persistence off:
	// Lookup always misses and Set stores nothing; negative is refused.
	// The clb example enforces the CLB's 0–3600 s.
	PersistenceTimeout time.Duration
	// MaxEntries bounds the number of addresses remembered. If zero,
	// 262144 is used. Range 64–67108864. The bound is split evenly over
	// 64 shards; a full shard evicts its least recently set entry.
	MaxEntries int
}

// Affinity is the source-IP persistence table of TCP and UDP listeners: it
// maps a client's address to the backend ID it was last sent to, for
// PersistenceTimeout after the last Set or Touch (an idle timeout).
//
// The table is split into 64 shards by a seeded hash of the address, each
// a mutex, a map from that hash to an entry and an LRU list of entries, so concurrent lookups of
// different clients rarely meet on a lock. Its size is bounded: a full
// shard evicts the entry set or touched longest ago (LRU within the shard,
// approximately LRU overall). Expired entries are reclaimed without
// goroutines: a lookup that finds one removes it, each Set reclaims up to
// two from its shard's LRU end, and [Affinity.Sweep], which the owner may
// call periodically (say every PersistenceTimeout), reclaims the rest.
//
// The table stores IDs, not members: a backend removed from the group may
// still be named by entries until they expire. The listener must re-check
// with the group's PickSticky, which falls back to a fresh pick; Delete
// removes such entries at once to free memory early.
//
// Addresses are keyed by their 16-byte form, so ::ffff:192.0.2.1 and
// 192.0.2.1 are the same client. A zone (fe80::1%eth0) is ignored: the
// same link-local address on two interfaces shares one binding, which at
// worst sends both to the same current backend.
//
// Create one with [NewAffinity]. An Affinity is safe for concurrent use
// and must not be copied. Lookup allocates nothing.
type Affinity struct {
	timeout int64 // nanoseconds; 0: off
	seed    uint64
	shards  [shardCount]paddedShard
}

type paddedShard struct {
	affShard
	_ [64]byte // keep neighbouring shards' locks off one cache line
}

type affShard struct {
	mu         sync.Mutex
	idx        map[uint64]int32 // by the seeded 64-bit hash of the key
	ents       []affEntry
	head, tail int32 // most and least recently set; -1 when empty
	free       int32 // free list through next; -1 when empty
	cap        int32
}

// akey is an address as a map key: its 16-byte form (IPv4 as
// ::ffff:a.b.c.d), which hashes and compares faster than netip.Addr.
type akey struct{ hi, lo uint64 }

func keyOf(addr netip.Addr) akey {
	b := addr.As16()
	return akey{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

type affEntry struct {
	key        akey
	hash       uint64
	id         string
	touched    int64 // UnixNano of the last Set or Touch
	prev, next int32
}

// NewAffinity returns a table for cfg, or a *ConfigError.
func NewAffinity(cfg AffinityConfig) (*Affinity, error) {
	if cfg.PersistenceTimeout < 0 {
		return nil, configErr("PersistenceTimeout", cfg.PersistenceTimeout, "negative (0 = off)")
	}
	n := cfg.MaxEntries
	if n == 0 {
		n = DefaultMaxEntries
	}
	if n < minEntries || n > maxEntries {
		return nil, configErr("MaxEntries", cfg.MaxEntries, "out of range 64–67108864")
	}
	var seed [8]byte
	rand.Read(seed[:])
	a := &Affinity{timeout: int64(cfg.PersistenceTimeout), seed: binary.LittleEndian.Uint64(seed[:])}
	for i := range a.shards {
		sh := &a.shards[i].affShard
		sh.head, sh.tail, sh.free = -1, -1, -1
		sh.cap = int32(n / shardCount)
		if i < n%shardCount {
			sh.cap++
		}
		if a.timeout > 0 {
			sh.idx = make(map[uint64]int32)
		}
	}
	return a, nil
}

// hash mixes k with the table's random seed. The map is keyed by this
// hash (a uint64 map is the runtime's fast path) and the entry holds the
// full key: two addresses whose 64-bit hashes collide share one slot, the
// later Set replacing the earlier binding — a lost binding, which costs
// only a fresh pick, and rarer than one in a billion at the default size.
func (a *Affinity) hash(k akey) uint64 {
	x := (k.hi^a.seed)*0x9e3779b97f4a7c15 ^ k.lo
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	x ^= x >> 29
	x *= 0x94d049bb133111eb
	x ^= x >> 32
	return x
}

func (a *Affinity) shard(h uint64) *affShard {
	return &a.shards[h>>(64-6)].affShard
}

// Lookup is LookupAt(addr, time.Now()).
func (a *Affinity) Lookup(addr netip.Addr) (id string, ok bool) {
	return a.LookupAt(addr, time.Now())
}

// LookupAt returns the backend ID addr was last bound to, if that binding
// has not been idle for PersistenceTimeout at now. It does not refresh the
// binding; Set or Touch does. Pass the ID to the group's PickSticky.
func (a *Affinity) LookupAt(addr netip.Addr, now time.Time) (id string, ok bool) {
	if a.timeout == 0 || !addr.IsValid() {
		return "", false
	}
	k := keyOf(addr)
	h := a.hash(k)
	s := a.shard(h)
	t := now.UnixNano()
	s.mu.Lock()
	i, ok := s.idx[h]
	if ok && s.ents[i].key != k {
		ok = false // a hash collision: not this client's binding
	} else if ok {
		if e := &s.ents[i]; t-e.touched < a.timeout {
			id = e.id
		} else {
			s.remove(i)
			ok = false
		}
	}
	s.mu.Unlock()
	return id, ok
}

// Set is SetAt(addr, id, time.Now()).
func (a *Affinity) Set(addr netip.Addr, id string) { a.SetAt(addr, id, time.Now()) }

// SetAt binds addr to backend id from now on, replacing any binding and
// restarting its idle time. A full shard first evicts its least recently
// set entry. An invalid addr or an empty id is ignored, as is every call
// while persistence is off.
func (a *Affinity) SetAt(addr netip.Addr, id string, now time.Time) {
	if a.timeout == 0 || !addr.IsValid() || id == "" {
		return
	}
	k := keyOf(addr)
	h := a.hash(k)
	s := a.shard(h)
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.idx[h]; ok {
		e := &s.ents[i]
		e.key, e.id, e.touched = k, id, t
		s.unlink(i)
		s.pushFront(i)
		return
	}
	for k := 0; k < 2 && s.tail >= 0 && t-s.ents[s.tail].touched >= a.timeout; k++ {
		s.remove(s.tail)
	}
	if int32(len(s.idx)) >= s.cap {
		s.remove(s.tail)
	}
	var i int32
	if s.free >= 0 {
		i = s.free
		s.free = s.ents[i].next
	} else {
		i = int32(len(s.ents))
		s.ents = append(s.ents, affEntry{})
	}
	s.ents[i] = affEntry{key: k, hash: h, id: id, touched: t}
	s.pushFront(i)
	s.idx[h] = i
}

// Touch is TouchAt(addr, time.Now()).
func (a *Affinity) Touch(addr netip.Addr) bool { return a.TouchAt(addr, time.Now()) }

// TouchAt restarts addr's idle time if it has a live binding, and reports
// whether it had. Listeners call it when a long connection or flow ends (or
// on its traffic), so the idle time counts from the client's last activity.
func (a *Affinity) TouchAt(addr netip.Addr, now time.Time) bool {
	if a.timeout == 0 || !addr.IsValid() {
		return false
	}
	k := keyOf(addr)
	h := a.hash(k)
	s := a.shard(h)
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.idx[h]
	if !ok || s.ents[i].key != k {
		return false
	}
	if t-s.ents[i].touched >= a.timeout {
		s.remove(i)
		return false
	}
	s.ents[i].touched = t
	s.unlink(i)
	s.pushFront(i)
	return true
}

// Delete removes every binding to backend id and returns how many it
// removed. It walks the whole table, one shard lock at a time: call it when
// a backend leaves the group, not per request. Not calling it is safe, as
// the listener re-checks membership; it only frees memory early.
func (a *Affinity) Delete(id string) int {
	n := 0
	for k := range a.shards {
		s := &a.shards[k].affShard
		s.mu.Lock()
		for i := s.head; i >= 0; {
			next := s.ents[i].next
			if s.ents[i].id == id {
				s.remove(i)
				n++
			}
			i = next
		}
		s.mu.Unlock()
	}
	return n
}

// Sweep is SweepAt(time.Now()).
func (a *Affinity) Sweep() int { return a.SweepAt(time.Now()) }

// SweepAt removes the bindings idle for PersistenceTimeout at now and
// returns how many it removed. It walks each shard from its least recently
// set end and stops at the first live entry, so its cost is the number of
// expired entries (given a clock that does not run backwards).
func (a *Affinity) SweepAt(now time.Time) int {
	if a.timeout == 0 {
		return 0
	}
	t := now.UnixNano()
	n := 0
	for k := range a.shards {
		s := &a.shards[k].affShard
		s.mu.Lock()
		for s.tail >= 0 && t-s.ents[s.tail].touched >= a.timeout {
			s.remove(s.tail)
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of bindings held, including expired ones not yet
// reclaimed.
func (a *Affinity) Len() int {
	n := 0
	for k := range a.shards {
		s := &a.shards[k].affShard
		s.mu.Lock()
		n += len(s.idx)
		s.mu.Unlock()
	}
	return n
}

func (s *affShard) pushFront(i int32) {
	e := &s.ents[i]
	e.prev, e.next = -1, s.head
	if s.head >= 0 {
		s.ents[s.head].prev = i
	} else {
		s.tail = i
	}
	s.head = i
}

func (s *affShard) unlink(i int32) {
	e := &s.ents[i]
	if e.prev >= 0 {
		s.ents[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next >= 0 {
		s.ents[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
}

// remove unlinks entry i, forgets its address and puts it on the free list.
func (s *affShard) remove(i int32) {
	s.unlink(i)
	e := &s.ents[i]
	delete(s.idx, e.hash)
	*e = affEntry{next: s.free, prev: -1}
	s.free = i
}
