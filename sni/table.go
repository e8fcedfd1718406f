package sni

import (
	"cmp"
	"iter"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Table maps domain patterns to values of type V and finds the value for a
// host name, as an HTTPS listener picks a certificate by SNI name or an
// HTTP listener picks a forwarding rule by Host header.
//
// A name matches, in priority order: the exact pattern equal to it; else
// the narrowest wildcard above it, a wildcard matching at any depth
// ("info.market.example.com" picks "*.market.example.com" over
// "*.example.com"; "a.b.example.com" falls back to "*.example.com" when
// nothing narrower is bound). A wildcard never matches its own suffix:
// "*.example.com" does not match "example.com"; bind that exactly. Matching
// ignores case and one trailing dot. See [ParseDomain] for the pattern
// syntax.
//
// Every change builds a new immutable snapshot and publishes it with one
// atomic store; [Table.Match] only loads the current snapshot, so it takes
// no lock and allocates nothing. Writers are serialized and each copies the
// table (O(n)); group many changes into one [Table.Update], which is
// all-or-nothing.
//
// The zero Table is empty and ready to use. Most callers want
// [Table.Set] and [Table.Match]. Writers return a *ConfigError for an
// invalid pattern.
//
// A Table is safe for concurrent use by multiple goroutines. It must not be
// copied after first use.
type Table[V any] struct {
	mu   sync.Mutex // serializes writers
	snap atomic.Pointer[snapshot[V]]
}

// entry is one bound pattern; immutable once published.
type entry[V any] struct {
	pattern string // canonical, "*." included for a wildcard
	v       V
}

// snapshot is an immutable table state. exact is keyed by the name, wild by
// the wildcard's suffix ("example.com" for "*.example.com"). exactLens and
// wildLens record the key lengths present, so a lookup skips hashing a name
// or suffix no key can equal.
type snapshot[V any] struct {
	exact, wild         map[string]*entry[V]
	exactLens, wildLens lenSet
}

// lenSet is a set of lengths 0–255 (names are at most 253 bytes).
type lenSet [4]uint64

func (s *lenSet) add(l int)      { s[l>>6&3] |= 1 << (l & 63) }
func (s *lenSet) has(l int) bool { return s[l>>6&3]&(1<<(l&63)) != 0 }

// Match returns the value bound to the pattern that best matches the host
// name, and whether one matched. The name is matched case-insensitively,
// one trailing dot ignored; it carries no port (see [StripPort]). A name
// that is not a plausible host name (characters other than letters,
// digits, '-', '_' and '.', an empty label, over DNS lengths) matches
// nothing. Match takes no lock and allocates nothing.
func (t *Table[V]) Match(name string) (V, bool) {
	if e := t.lookup(name); e != nil {
		return e.v, true
	}
	var zero V
	return zero, false
}

// MatchPattern is [Table.Match] that also returns the canonical pattern that
// matched ("*.example.com"), for logs and metrics. It allocates nothing.
func (t *Table[V]) MatchPattern(name string) (pattern string, v V, ok bool) {
	if e := t.lookup(name); e != nil {
		return e.pattern, e.v, true
	}
	return "", v, false
}

func (t *Table[V]) lookup(name string) *entry[V] {
	s := t.snap.Load()
	if s == nil {
		return nil
	}
	var buf [maxName]byte
	n, ok := canonName(&buf, name)
	if !ok {
		return nil
	}
	if s.exactLens.has(n) {
		if e, ok := s.exact[string(buf[:n])]; ok {
			return e
		}
	}
	// Narrowest first: the suffix after the leftmost dot is the longest.
	for i := 0; i < n; i++ {
		if buf[i] != '.' {
			continue
		}
		if !s.wildLens.has(n - i - 1) {
			continue
		}
		if e, ok := s.wild[string(buf[i+1:n])]; ok {
			return e
		}
	}
	return nil
}

// Get returns the value bound to exactly this pattern (not a lookup by host
// name: Get("*.example.com") finds the wildcard itself). ok is false if the
// pattern is invalid or not bound.
func (t *Table[V]) Get(pattern string) (v V, ok bool) {
	d, err := ParseDomain(pattern)
	s := t.snap.Load()
	if err != nil || s == nil {
		return v, false
	}
	m := s.exact
	if d.wild {
		m = s.wild
	}
	if e, ok := m[d.suffix()]; ok {
		return e.v, true
	}
	return v, false
}

// Len returns the number of bound patterns.
func (t *Table[V]) Len() int {
	s := t.snap.Load()
	if s == nil {
		return 0
	}
	return len(s.exact) + len(s.wild)
}

// All returns an iterator over the bound patterns (canonical form) and
// their values, sorted by pattern, as of the call.
func (t *Table[V]) All() iter.Seq2[string, V] {
	s := t.snap.Load()
	return func(yield func(string, V) bool) {
		if s == nil {
			return
		}
		es := slices.Collect(maps.Values(s.exact))
		es = slices.AppendSeq(es, maps.Values(s.wild))
		slices.SortFunc(es, func(a, b *entry[V]) int { return cmp.Compare(a.pattern, b.pattern) })
		for _, e := range es {
			if !yield(e.pattern, e.v) {
				return
			}
		}
	}
}

// Set binds pattern to v, adding the pattern or replacing its value. It
// returns a *ConfigError, and changes nothing, if the pattern is invalid.
func (t *Table[V]) Set(pattern string, v V) error {
	return t.update(nil, func(b *Batch[V]) error { return b.Set(pattern, v) })
}

// Delete unbinds pattern. Deleting a pattern that is not bound is not an
// error; an invalid pattern is (a *ConfigError).
func (t *Table[V]) Delete(pattern string) error {
	return t.update(nil, func(b *Batch[V]) error { return b.Delete(pattern) })
}

// Update applies the changes fn makes to b as one step: lookups see either
// none or all of them. If fn returns an error, or any change fn made was
// refused (even if fn ignored that error), nothing is applied and Update
// returns that error. b must not be used after fn returns. Writers wait for
// each other; lookups never wait.
func (t *Table[V]) Update(fn func(b *Batch[V]) error) error {
	return t.update(nil, fn)
}

// update runs fn on a copy of the current state; check, if non-nil, vets
// every value set (Selector's certificate coverage check).
func (t *Table[V]) update(check func(Domain, V) error, fn func(b *Batch[V]) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := &Batch[V]{check: check}
	if s := t.snap.Load(); s != nil {
		b.exact, b.wild = maps.Clone(s.exact), maps.Clone(s.wild)
	} else {
		b.exact, b.wild = map[string]*entry[V]{}, map[string]*entry[V]{}
	}
	err := fn(b)
	b.done = true
	if err == nil {
		err = b.err
	}
	if err != nil {
		return err
	}
	if !b.changed {
		return nil
	}
	s := &snapshot[V]{exact: b.exact, wild: b.wild}
	for k := range s.exact {
		s.exactLens.add(len(k))
	}
	for k := range s.wild {
		s.wildLens.add(len(k))
	}
	t.snap.Store(s)
	return nil
}

// Batch collects the changes of one [Table.Update] or [Selector.Update].
// Its methods return the same errors as the Table's; the first error also
// fails the whole Update. A Batch is valid only inside the Update function
// that received it and is not safe for concurrent use.
type Batch[V any] struct {
	exact, wild map[string]*entry[V]
	check       func(Domain, V) error
	err         error // first refused change
	changed     bool
	done        bool
}

func (b *Batch[V]) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

func (b *Batch[V]) parse(pattern string) (Domain, map[string]*entry[V], error) {
	if b.done {
		return Domain{}, nil, errBatchDone
	}
	d, err := ParseDomain(pattern)
	if err != nil {
		return Domain{}, nil, b.fail(err)
	}
	if d.wild {
		return d, b.wild, nil
	}
	return d, b.exact, nil
}

// Set binds pattern to v within the batch, adding or replacing.
func (b *Batch[V]) Set(pattern string, v V) error {
	d, m, err := b.parse(pattern)
	if err != nil {
		return err
	}
	if b.check != nil {
		if err := b.check(d, v); err != nil {
			return b.fail(err)
		}
	}
	m[d.suffix()] = &entry[V]{pattern: d.s, v: v}
	b.changed = true
	return nil
}

// Delete unbinds pattern within the batch; a pattern not bound is no error.
func (b *Batch[V]) Delete(pattern string) error {
	d, m, err := b.parse(pattern)
	if err != nil {
		return err
	}
	if _, ok := m[d.suffix()]; ok {
		delete(m, d.suffix())
		b.changed = true
	}
	return nil
}

// Clear unbinds every pattern within the batch, so that an Update can
// replace the whole table: Clear, then Set each pattern of the new
// configuration.
func (b *Batch[V]) Clear() {
	if b.done {
		return
	}
	if len(b.exact)+len(b.wild) > 0 {
		b.changed = true
	}
	b.exact, b.wild = map[string]*entry[V]{}, map[string]*entry[V]{}
}
