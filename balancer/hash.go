package balancer

import (
	"encoding/binary"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// The keys a pick hashes are short (16, 20 or 36 bytes), where a call into
// xxhash's assembly costs more than the hashing. These functions compute
// the same XXH64 (seed 0) inline; TestXXH64Small and FuzzXXH64Small check
// them against xxhash.Sum64 bit for bit, so tables and keys do not move.

const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
	prime5 uint64 = 2870177450012600261
)

func round(acc, input uint64) uint64 {
	acc += input * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func mergeRound(acc, val uint64) uint64 {
	val = round(0, val)
	acc ^= val
	return acc*prime1 + prime4
}

func avalanche(h uint64) uint64 {
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

// lane folds one 8-byte lane into h, as XXH64's tail does.
func lane(h, k uint64) uint64 {
	h ^= round(0, k)
	return bits.RotateLeft64(h, 27)*prime1 + prime4
}

// xxh16 is XXH64 of 16 bytes given as two little-endian lanes.
func xxh16(a, b uint64) uint64 {
	h := prime5 + 16
	h = lane(h, a)
	h = lane(h, b)
	return avalanche(h)
}

// xxh36 is XXH64 of the 36 bytes v0..v3 (little-endian lanes) then t (a
// little-endian 4-byte word).
func xxh36(v0, v1, v2, v3 uint64, t uint32) uint64 {
	p1 := prime1 // a variable, so that the sums below wrap as XXH64's do
	a1, a2, a3, a4 := p1+prime2, prime2, uint64(0), -p1
	a1, a2, a3, a4 = round(a1, v0), round(a2, v1), round(a3, v2), round(a4, v3)
	h := bits.RotateLeft64(a1, 1) + bits.RotateLeft64(a2, 7) + bits.RotateLeft64(a3, 12) + bits.RotateLeft64(a4, 18)
	h = mergeRound(h, a1)
	h = mergeRound(h, a2)
	h = mergeRound(h, a3)
	h = mergeRound(h, a4)
	h += 36
	h ^= uint64(t) * prime1
	h = bits.RotateLeft64(h, 23)*prime2 + prime3
	return avalanche(h)
}

// xxhSmall is XXH64 of b, inline for fewer than 32 bytes (connection IDs
// are at most 20) and xxhash.Sum64 beyond.
func xxhSmall(b []byte) uint64 {
	n := len(b)
	if n >= 32 {
		return xxhash.Sum64(b)
	}
	h := prime5 + uint64(n)
	for ; len(b) >= 8; b = b[8:] {
		h = lane(h, binary.LittleEndian.Uint64(b))
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}
	return avalanche(h)
}

// fastmod returns a % d for the d that m was made for (m = ^0/d + 1),
// with two multiplications instead of a division (Lemire, Kaser and Kurz,
// "Faster Remainder by Direct Computation", 2019). Exact for all 32-bit
// a and d.
func fastmod(a uint32, m uint64, d uint32) uint32 {
	hi, _ := bits.Mul64(m*uint64(a), uint64(d))
	return uint32(hi)
}

func fastmodM(d uint32) uint64 { return ^uint64(0)/uint64(d) + 1 }
