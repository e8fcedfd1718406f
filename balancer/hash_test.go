package balancer

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// The inline hashes must equal xxhash.Sum64 bit for bit: they decide where
// keys land, and a difference would move keys between releases.
func TestXXH64Small(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 64)
	for range 10000 {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		for n := range 40 {
			if got, want := xxhSmall(buf[:n]), xxhash.Sum64(buf[:n]); got != want {
				t.Fatalf("xxhSmall(%x) = %x, want %x", buf[:n], got, want)
			}
		}
		le := binary.LittleEndian
		if got, want := xxh16(le.Uint64(buf), le.Uint64(buf[8:])), xxhash.Sum64(buf[:16]); got != want {
			t.Fatalf("xxh16(%x) = %x, want %x", buf[:16], got, want)
		}
		if got, want := xxh36(le.Uint64(buf), le.Uint64(buf[8:]), le.Uint64(buf[16:]), le.Uint64(buf[24:]), le.Uint32(buf[32:])), xxhash.Sum64(buf[:36]); got != want {
			t.Fatalf("xxh36(%x) = %x, want %x", buf[:36], got, want)
		}
	}
}

// The Key hashes are XXH64 of the documented byte layouts.
func TestKeyHashLayout(t *testing.T) {
	id := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	k := Key{
		Src:     netip.MustParseAddrPort("192.0.2.1:1234"),
		Dst:     netip.MustParseAddrPort("[2001:db8::1]:443"),
		Hash:    HashQUICConnID(id),
		HasHash: true,
	}
	s, d := k.Src.Addr().As16(), k.Dst.Addr().As16()
	var tuple [36]byte
	copy(tuple[:16], s[:])
	copy(tuple[16:32], d[:])
	binary.BigEndian.PutUint16(tuple[32:], 1234)
	binary.BigEndian.PutUint16(tuple[34:], 443)
	if got, want := k.SourceIPHash(), xxhash.Sum64(s[:]); got != want {
		t.Errorf("SourceIPHash = %x, want %x", got, want)
	}
	if got, want := k.FourTupleHash(), xxhash.Sum64(tuple[:]); got != want {
		t.Errorf("FourTupleHash = %x, want %x", got, want)
	}
	if got, want := k.ConnIDHash(), xxhash.Sum64(id); got != want {
		t.Errorf("ConnIDHash = %x, want %x", got, want)
	}
}

func FuzzXXH64Small(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("0123456789abcdef"))
	f.Add([]byte("0123456789abcdef0123456789abcdef0123"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := xxhSmall(b), xxhash.Sum64(b); got != want {
			t.Fatalf("xxhSmall(%x) = %x, want %x", b, got, want)
		}
	})
}

func TestFastmod(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	divisors := []uint32{1, 2, 3, 7, 10, 100, 1000, 65537, 1 << 20, 1<<31 + 11, 1<<32 - 1}
	for range 100 {
		divisors = append(divisors, r.Uint32()|1)
	}
	for _, d := range divisors {
		m := fastmodM(d)
		for _, a := range []uint32{0, 1, d - 1, d, d + 1, 1<<32 - 1, 1 << 31} {
			if got, want := fastmod(a, m, d), a%d; got != want {
				t.Fatalf("fastmod(%d, %d) = %d, want %d", a, d, got, want)
			}
		}
		for range 1000 {
			a := r.Uint32()
			if got, want := fastmod(a, m, d), a%d; got != want {
				t.Fatalf("fastmod(%d, %d) = %d, want %d", a, d, got, want)
			}
		}
	}
}
