package balancer

import (
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"sync"
)

// HashBy selects what a Maglev scheduler hashes.
type HashBy int

const (
	// HashSourceIP hashes the client address (sch): one client, one
	// backend.
	HashSourceIP HashBy = iota
	// HashFourTuple hashes source and destination address and port
	// (tch): one connection, one backend.
	HashFourTuple
	// HashConnID places by the QUIC connection ID (qch): Key.Hash as
	// HashQUICConnID computes it, falling back to the four-tuple when a
	// packet has none (HasHash false).
	HashConnID
	// HashKey hashes Key.Hash, a hash the caller computed from the
	// request (hash): one header, cookie or path value, one backend.
	// A Key without HasHash falls back to the source IP, as sch.
	HashKey
)

// DefaultTableSize is the Maglev lookup-table size used when
// Maglev.TableSize is zero. It is prime and suits groups of up to about
// 650 members (the paper's rule M > 100·N).
const DefaultTableSize = 65537

// maxTableSize bounds Maglev.TableSize (64 MiB of table).
const maxTableSize = 1 << 24

// Maglev is a consistent-hash scheduler built on [Maglev] lookup tables,
// weighted, hashed with xxhash: sch, tch, qch or hash depending on By.
//
// Each snapshot fills a table of TableSize slots: every member walks its
// own permutation of the slots (offset and skip from the xxhash of its
// ID) and claims free slots in turn, members of weight w claiming w turns
// for every MaxWeight-weight turn of the heaviest. A pick hashes the key
// and reads one slot. Members therefore own slots in proportion to weight,
// and when a member joins or leaves only a little more than its own share
// of keys moves.
//
// Members are ordered by ID before the table is built, and the slot
// permutation depends only on the ID, so every process builds the same
// table from the same members and weights. This ordering and the hash of
// the ID are frozen: changing them would move keys on upgrade.
//
// The zero value is the sch scheduler with the default table size.
//
// [Maglev]: https://research.google/pubs/maglev-a-fast-and-reliable-software-network-load-balancer/
type Maglev struct {
	// By selects the key: HashSourceIP (sch), HashFourTuple (tch),
	// HashConnID (qch) or HashKey (hash).
	By HashBy
	// TableSize is the number of lookup slots M. It must be prime, at
	// most 16777216, and at least the number of members. The paper
	// advises M > 100·N (N members) for even shares. Larger tables also
	// move fewer extra keys when a member leaves: with 100 members,
	// removing one moves about 1.55 × its own share at M = 65537 and
	// 1.14 × at M = 655373, at the cost of 4 bytes a slot and a longer
	// build. If zero, DefaultTableSize (65537) is used.
	TableSize int
}

// Name returns "sch", "tch", "qch" or "hash".
func (s Maglev) Name() string {
	switch s.By {
	case HashFourTuple:
		return NameTCH
	case HashConnID:
		return NameQCH
	case HashKey:
		return NameHash
	}
	return NameSCH
}

func (s Maglev) size() int {
	if s.TableSize == 0 {
		return DefaultTableSize
	}
	return s.TableSize
}

// Validate checks By and TableSize.
func (s Maglev) Validate() error {
	if s.By < HashSourceIP || s.By > HashKey {
		return configErr("HashBy", int(s.By), "unknown")
	}
	m := s.size()
	if m < 2 || m > maxTableSize {
		return configErr("TableSize", m, "out of range 2–16777216")
	}
	if !big.NewInt(int64(m)).ProbablyPrime(0) { // exact below 2^64
		return configErr("TableSize", m, "not prime")
	}
	return nil
}

// Build fills the lookup table for members.
func (s Maglev) Build(members []*Member) (Picker, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	m := s.size()
	if len(members) > m {
		return nil, configErr("TableSize", m, fmt.Sprintf("smaller than the %d members", len(members)))
	}
	p := &maglevPicker{
		members: append([]*Member(nil), members...),
		table:   maglevTable(members, m),
		size:    uint64(m),
		by:      s.By,
	}
	return p, nil
}

type maglevPicker struct {
	members []*Member
	table   []uint32 // slot → index into members
	size    uint64
	by      HashBy
}

func (p *maglevPicker) Pick(k Key) *Member {
	var h uint64
	switch p.by {
	case HashSourceIP:
		h = sourceIPHash(&k)
	case HashFourTuple:
		h = fourTupleHash(&k)
	case HashConnID:
		h = connIDHash(&k)
	default:
		h = keyHash(&k)
	}
	return p.members[p.table[slot(h, p.size)]]
}

// slot maps a 64-bit hash onto [0, m) by multiplication (Lemire's
// reduction), which is faster than a division and as uniform.
func slot(h, m uint64) uint64 {
	hi, _ := bits.Mul64(h, m)
	return hi
}

// maglevTable populates a weighted Maglev table of size m (prime, ≥
// len(members)).
//
// Filling probes about m·ln m slots whatever the number of members, at
// random; the probes test a bitmap of the claimed slots (8 KiB at the
// default size, in L1) rather than the table (256 KiB), and each member's
// permutation state is one small record, not three slices. The scratch is
// pooled; the table, which a published picker keeps, is always new.
func maglevTable(members []*Member, m int) []uint32 {
	sc := maglevScratchPool.Get().(*maglevScratch)
	defer maglevScratchPool.Put(sc)
	n, size := len(members), uint32(m)
	perm := slices.Grow(sc.perm[:0], n)[:n]
	used := slices.Grow(sc.used[:0], (m+63)/64)[:(m+63)/64]
	clear(used)
	sc.perm, sc.used = perm, used
	maxW := uint32(0)
	for i, mem := range members {
		h1 := mem.hid
		perm[i] = maglevPerm{
			pos:    uint32(h1 % uint64(m)),
			skip:   uint32(mix64(h1)%uint64(m-1)) + 1,
			weight: uint32(mem.weight),
		}
		maxW = max(maxW, perm[i].weight)
	}
	table := make([]uint32, m)
	for filled := 0; ; {
		for i := range perm {
			p := &perm[i]
			// A member of weight w takes a turn w times in maxW rounds.
			if p.credit += p.weight; p.credit < maxW {
				continue
			}
			p.credit -= maxW
			c := p.pos
			for used[c/64]&(1<<(c%64)) != 0 {
				if c += p.skip; c >= size {
					c -= size
				}
			}
			used[c/64] |= 1 << (c % 64)
			table[c] = uint32(i)
			if c += p.skip; c >= size {
				c -= size
			}
			p.pos = c
			if filled++; filled == m {
				return table
			}
		}
	}
}

// maglevPerm is one member's walk through its permutation of the slots.
type maglevPerm struct {
	pos, skip      uint32 // next slot to try; step, 1..m-1
	weight, credit uint32
}

// maglevScratch is the reusable working memory of a table build.
type maglevScratch struct {
	perm []maglevPerm
	used []uint64 // bitmap of claimed slots
}

var maglevScratchPool = sync.Pool{New: func() any { return new(maglevScratch) }}

// mix64 is the splitmix64 finalizer; it derives the permutation's skip
// from the same ID hash as its offset.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
