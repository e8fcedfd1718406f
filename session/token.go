package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"io"
	"sync"
)

// Token layout (version 1), 33 bytes, sent as 44 characters of base64url
// without padding:
//
//	version(1) | issued(4, Unix seconds, big endian) | tag(12) | mac(16)
//
// tag is HMAC-SHA-256(tagKey, backend ID) truncated to 96 bits: it names the
// backend without revealing its ID (which defaults to its address). mac is
// HMAC-SHA-256(macKey, version|issued|tag) truncated to 128 bits. tagKey
// and macKey are derived from the configured key with HMAC under fixed
// labels, so one key never serves two purposes.
const (
	tokenVersion = 1
	tagLen       = 12
	macLen       = 16
	rawLen       = 1 + 4 + tagLen + macLen
	// TokenLen is the length of every token Encode returns.
	TokenLen = rawLen / 3 * 4
	bodyLen  = rawLen - macLen
)

type tag [tagLen]byte

// keyState holds one key's derived subkeys and a pool of MAC hashers, so
// that computing a MAC allocates nothing.
type keyState struct {
	tagKey []byte
	pool   sync.Pool // *macer
}

// macer is a reusable HMAC with its scratch buffers; the buffers live with
// it on the heap so that passing them to the hash.Hash interface does not
// make a caller's stack buffer escape.
type macer struct {
	h   hash.Hash
	raw [rawLen]byte
	sum [sha256.Size]byte
}

func newKeyState(key []byte) *keyState {
	ks := &keyState{tagKey: derive(key, "lbkit/session tag v1")}
	macKey := derive(key, "lbkit/session mac v1")
	ks.pool.New = func() any { return &macer{h: hmac.New(sha256.New, macKey)} }
	return ks
}

func derive(key []byte, label string) []byte {
	h := hmac.New(sha256.New, key)
	io.WriteString(h, label)
	return h.Sum(nil)
}

func randomKey() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand panics rather than return an error)
	return k
}

func (ks *keyState) tagOf(id string) tag {
	h := hmac.New(sha256.New, ks.tagKey)
	io.WriteString(h, id)
	var t tag
	copy(t[:], h.Sum(nil))
	return t
}

// mac computes the MAC of m.raw's body into m.sum and returns its
// truncation.
func (m *macer) mac() []byte {
	m.h.Reset()
	m.h.Write(m.raw[:bodyLen])
	return m.h.Sum(m.sum[:0])[:macLen]
}

// seal returns the token for t issued at the given Unix second.
func (ks *keyState) seal(t tag, issued uint32) string {
	m := ks.pool.Get().(*macer)
	m.raw[0] = tokenVersion
	binary.BigEndian.PutUint32(m.raw[1:5], issued)
	copy(m.raw[5:bodyLen], t[:])
	copy(m.raw[bodyLen:], m.mac())
	var out [TokenLen]byte
	base64.RawURLEncoding.Encode(out[:], m.raw[:])
	ks.pool.Put(m)
	return string(out[:])
}

// open checks raw's MAC under ks in constant time and returns its tag and
// issue time.
func (ks *keyState) open(raw *[rawLen]byte) (t tag, issued uint32, ok bool) {
	m := ks.pool.Get().(*macer)
	m.raw = *raw
	ok = hmac.Equal(m.mac(), raw[bodyLen:])
	ks.pool.Put(m)
	if !ok {
		return t, 0, false
	}
	copy(t[:], raw[5:bodyLen])
	return t, binary.BigEndian.Uint32(raw[1:5]), true
}

// b64 maps a base64url character to its value, or 0xff.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// unpack decodes a token's base64url text into raw and checks its length
// and version. Unlike encoding/base64 it skips no newline and takes a
// string, so it allocates nothing.
func unpack(s string, raw *[rawLen]byte) bool {
	if len(s) != TokenLen {
		return false
	}
	for i, j := 0, 0; i < TokenLen; i, j = i+4, j+3 {
		a, b, c, d := b64[s[i]], b64[s[i+1]], b64[s[i+2]], b64[s[i+3]]
		if (a|b|c|d)&0xc0 != 0 { // 0xff marks a character outside the alphabet
			return false
		}
		raw[j] = a<<2 | b>>4
		raw[j+1] = b<<4 | c>>2
		raw[j+2] = c<<6 | d
	}
	return raw[0] == tokenVersion
}
