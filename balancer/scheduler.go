package balancer

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"strings"
)

// Key is the input of a pick: what the caller knows about the connection,
// request or datagram being placed. Schedulers use what they need and
// ignore the rest. A Key is a small value (80 bytes, passed by value to
// every Picker: its size is a pick's cost); building one allocates nothing.
type Key struct {
	// Src is the client's address and port.
	Src netip.AddrPort
	// Dst is the address and port the client connected to: a listener
	// puts its ServiceAddr here when it has one (the address every
	// replica of a fleet shares), else the connection's local address.
	Dst netip.AddrPort
	// Hash is a caller-computed hash of whatever identifies the flow or
	// request: for qch (Maglev{By: HashConnID}), HashQUICConnID of the
	// QUIC destination connection ID, as a UDP listener sets it; for hash
	// (Maglev{By: HashKey}), anything — a header, a cookie, the path, a
	// query parameter. Computing it is the caller's, so a pick still
	// allocates nothing.
	Hash uint64
	// HasHash says Hash is set. Without it qch falls back to the
	// four-tuple (a packet with no connection ID) and hash to the source
	// IP (a request without the hashed header).
	HasHash bool
}

// HashQUICConnID returns the Key.Hash the qch scheduler expects for a QUIC
// destination connection ID: its XXH64.
func HashQUICConnID(id []byte) uint64 { return xxhSmall(id) }

// SourceIPHash returns the hash the sch scheduler uses: XXH64 of the
// source address in its 16-byte form, so an IPv4 address and its
// IPv4-mapped IPv6 form hash alike.
func (k Key) SourceIPHash() uint64 { return sourceIPHash(&k) }

// FourTupleHash returns the hash the tch scheduler uses: XXH64 of source
// address, destination address (16 bytes each), source port and
// destination port (big-endian).
func (k Key) FourTupleHash() uint64 { return fourTupleHash(&k) }

// ConnIDHash returns the hash the qch scheduler uses: Hash (the
// connection ID's, HashQUICConnID), or FourTupleHash when HasHash is false
// (a packet with no connection ID).
func (k Key) ConnIDHash() uint64 { return connIDHash(&k) }

// The hashes take *Key so that pickers, which hold the Key they were
// passed, hash it in place instead of copying it once more.

func sourceIPHash(k *Key) uint64 {
	a := k.Src.Addr().As16()
	return xxh16(binary.LittleEndian.Uint64(a[0:]), binary.LittleEndian.Uint64(a[8:]))
}

func fourTupleHash(k *Key) uint64 {
	s, d := k.Src.Addr().As16(), k.Dst.Addr().As16()
	ports := uint32(k.Src.Port())<<16 | uint32(k.Dst.Port())
	return xxh36(binary.LittleEndian.Uint64(s[0:]), binary.LittleEndian.Uint64(s[8:]),
		binary.LittleEndian.Uint64(d[0:]), binary.LittleEndian.Uint64(d[8:]),
		bits.ReverseBytes32(ports))
}

// keyHash is the hash the hash scheduler uses: Key.Hash mixed by
// splitmix64's finalizer, so that callers' small or patterned values
// spread over the table, or the source-IP hash when HasHash is false.
func keyHash(k *Key) uint64 {
	if !k.HasHash {
		return sourceIPHash(k)
	}
	return mix64(k.Hash)
}

func connIDHash(k *Key) uint64 {
	if !k.HasHash {
		return fourTupleHash(k)
	}
	return k.Hash
}

// A Scheduler turns a group's eligible members into a Picker. The group
// calls Build on every change of membership, weight or health — never
// concurrently for one group, and never on the pick path — and publishes
// the Picker it returns as part of an immutable snapshot.
//
// Implement Scheduler to plug in your own policy, and check it with
// balancertest.TestScheduler.
type Scheduler interface {
	// Name returns the scheduler's configuration name, such as "wrr".
	Name() string
	// Build returns a Picker over members. members is non-empty, sorted
	// by ID, and every member in it is Ready and may take new work.
	// Build must not retain or modify the slice after it returns unless it
	// copies it; the Members themselves may be kept. An error refuses the
	// change that led to the build, which the group then does not apply.
	Build(members []*Member) (Picker, error)
}

// A Picker chooses one member per pick. Pick is called concurrently from
// many goroutines and must be safe for that; it should not lock or
// allocate. It must return one of the members its Build was given, or nil
// if it cannot choose (the group then reports ErrNoBackend).
type Picker interface {
	Pick(k Key) *Member
}

// validator is implemented by schedulers with parameters to check before
// any member exists (Maglev's table size).
type validator interface {
	Validate() error
}

// Names of the built-in schedulers, as in the CLB API.
const (
	NameWRR = "wrr" // smooth weighted round robin
	NameRR  = "rr"  // round robin
	NameSCH = "sch" // consistent hash of the source IP
	NameTCH = "tch" // consistent hash of the four-tuple
	NameQCH = "qch" // consistent hash of the QUIC connection ID
	NameWLC = "wlc" // weighted least connections
)

// Names of the built-in schedulers beyond the CLB's.
const (
	NameHash = "hash" // consistent hash of Key.Hash, falling back to the source IP
	NameEWMA = "ewma" // peak-EWMA latency by the power of two choices
)

// ParseScheduler returns the built-in scheduler for a name: the CLB's
// "wrr", "rr", "sch", "tch", "qch" and "wlc", or "hash" and "ewma". Case
// does not matter. Hash schedulers get the default Maglev table size,
// ewma the defaults of PeakEWMAConfig.
func ParseScheduler(name string) (Scheduler, error) {
	switch strings.ToLower(name) {
	case NameWRR:
		return WeightedRoundRobin(), nil
	case NameRR:
		return RoundRobin(), nil
	case NameSCH:
		return Maglev{By: HashSourceIP}, nil
	case NameTCH:
		return Maglev{By: HashFourTuple}, nil
	case NameQCH:
		return Maglev{By: HashConnID}, nil
	case NameWLC:
		return LeastConnections(), nil
	case NameHash:
		return Maglev{By: HashKey}, nil
	case NameEWMA:
		return PeakEWMA(), nil
	}
	return nil, configErr("Scheduler", name, "unknown; want wrr, rr, sch, tch, qch, wlc, hash or ewma")
}

// cacheLinePad keeps a hot atomic counter off the cache line of read-only
// fields next to it.
type cacheLinePad [64]byte
