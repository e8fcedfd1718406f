package quiclb

import (
	"crypto/aes"
	"crypto/cipher"
	"sync"
)

// prp is the draft's length-preserving cipher over n octets (Section
// 4.3): one AES-128-ECB block when n is 16, otherwise a four-round
// Feistel network whose round function is AES-128-ECB of the expanded
// half. For odd n the middle octet is split between the halves by nibble.
//
// The generator also uses it, under a key of its own, to scramble
// plaintext-mode nonces: it is a permutation, so a counter stays unique
// while losing any visible relation to the previous one.
type prp struct {
	b cipher.Block
	n int
}

func newPRP(key []byte, n int) (prp, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return prp{}, err
	}
	return prp{b: b, n: n}, nil
}

// aesBuf holds the cipher.Block's input and output. Passing a slice to an
// interface method moves it to the heap, so the buffers come from a pool
// instead of the stack to keep encoding and decoding allocation-free.
type aesBuf struct{ in, out [aes.BlockSize]byte }

var aesBufs = sync.Pool{New: func() any { return new(aesBuf) }}

// maxHalf is the largest half of a Feistel input: ceil(19/2).
const maxHalf = (MaxPlaintextLen + 1) / 2

// encrypt writes the ciphertext of src (n octets) to dst (n octets); they
// may be the same slice.
func (p prp) encrypt(dst, src []byte) {
	buf := aesBufs.Get().(*aesBuf)
	defer aesBufs.Put(buf)
	if p.n == aes.BlockSize {
		copy(buf.in[:], src)
		p.b.Encrypt(buf.out[:], buf.in[:])
		copy(dst, buf.out[:])
		return
	}
	var l, r [maxHalf]byte
	h := p.split(&l, &r, src)
	p.round(buf, 1, l[:h], r[:h]) // right_1
	p.clearRight(&r)
	p.round(buf, 2, r[:h], l[:h]) // left_1
	p.clearLeft(&l, h)
	p.round(buf, 3, l[:h], r[:h]) // right_2
	p.clearRight(&r)
	p.round(buf, 4, r[:h], l[:h]) // left_2
	p.clearLeft(&l, h)
	p.join(dst, &l, &r, h)
}

// decrypt writes the first len(dst) octets of the plaintext of src (n
// octets) to dst. The four-pass case stops after three passes when dst
// lies within the left half, as a load balancer reading a server ID no
// longer than the nonce can (Section 4.4.2).
func (p prp) decrypt(dst, src []byte) {
	buf := aesBufs.Get().(*aesBuf)
	defer aesBufs.Put(buf)
	if p.n == aes.BlockSize {
		copy(buf.in[:], src)
		p.b.Decrypt(buf.out[:], buf.in[:])
		copy(dst, buf.out[:])
		return
	}
	var l, r [maxHalf]byte
	h := p.split(&l, &r, src)
	p.round(buf, 4, r[:h], l[:h]) // left_1
	p.clearLeft(&l, h)
	p.round(buf, 3, l[:h], r[:h]) // right_1
	p.clearRight(&r)
	p.round(buf, 2, r[:h], l[:h]) // left_0
	p.clearLeft(&l, h)
	if len(dst) <= p.n/2 { // whole octets of left_0
		copy(dst, l[:len(dst)])
		return
	}
	p.round(buf, 1, l[:h], r[:h]) // right_0
	p.clearRight(&r)
	var out [MaxPlaintextLen]byte
	p.join(out[:p.n], &l, &r, h)
	copy(dst, out[:p.n])
}

// split copies src into the left and right halves, each h octets; for odd
// n the left half's last nibble and the right half's first are zero.
func (p prp) split(l, r *[maxHalf]byte, src []byte) int {
	h := (p.n + 1) / 2
	copy(l[:h], src[:h])
	copy(r[:h], src[p.n-h:p.n])
	p.clearLeft(l, h)
	p.clearRight(r)
	return h
}

// join writes the halves back as n octets, merging the shared middle
// octet when n is odd.
func (p prp) join(dst []byte, l, r *[maxHalf]byte, h int) {
	copy(dst[:h], l[:h])
	if p.n%2 == 0 {
		copy(dst[h:p.n], r[:h])
		return
	}
	dst[h-1] |= r[0]
	copy(dst[h:p.n], r[1:h])
}

func (p prp) clearLeft(l *[maxHalf]byte, h int) {
	if p.n%2 == 1 {
		l[h-1] &= 0xf0
	}
}

func (p prp) clearRight(r *[maxHalf]byte) {
	if p.n%2 == 1 {
		r[0] &= 0x0f
	}
}

// round XORs into dst the first len(dst) octets of
// AES-ECB(expand(n, pass, src)), where expand is src, zero padding, then
// the octets n and pass (Section 4.3.2.2).
func (p prp) round(buf *aesBuf, pass byte, src, dst []byte) {
	buf.in = [aes.BlockSize]byte{}
	copy(buf.in[:], src)
	buf.in[14] = byte(p.n)
	buf.in[15] = pass
	p.b.Encrypt(buf.out[:], buf.in[:])
	for i := range dst {
		dst[i] ^= buf.out[i]
	}
}

// codec lays out and protects connection IDs for one validated Config.
type codec struct {
	cfg      Config
	plainLen int  // ServerIDLen + NonceLen
	first    byte // config rotation bits, in place
	enc      *prp // nil in plaintext mode
}

func newCodec(cfg Config) (codec, error) {
	cfg, err := cfg.effective()
	if err != nil {
		return codec{}, err
	}
	c := codec{
		cfg:      cfg,
		plainLen: cfg.ServerIDLen + cfg.NonceLen,
		first:    byte(cfg.ConfigID) << 5,
	}
	if cfg.Key != nil {
		p, err := newPRP(cfg.Key, c.plainLen)
		if err != nil {
			return codec{}, configErr("Key", "", err.Error())
		}
		c.enc = &p
	}
	return c, nil
}

// cidLen is the length of the connection IDs of the configuration.
func (c *codec) cidLen() int { return 1 + c.plainLen }

// encode writes the connection ID for sid and nonce to dst, which must
// hold cidLen octets; low holds the first octet's five low bits when the
// length is not encoded.
func (c *codec) encode(dst, sid, nonce []byte, low byte) {
	if c.cfg.EncodeLength {
		low = byte(c.plainLen) // the length minus the first octet
	}
	dst[0] = c.first | low&0x1f
	copy(dst[1:], sid[:c.cfg.ServerIDLen])
	copy(dst[1+c.cfg.ServerIDLen:], nonce[:c.cfg.NonceLen])
	if c.enc != nil {
		c.enc.encrypt(dst[1:1+c.plainLen], dst[1:1+c.plainLen])
	}
}

// decode writes the server ID of cid into sid (ServerIDLen octets);
// false if cid is not routable under this configuration: too short, of
// another config rotation codepoint (7 included), or of a self-encoded
// length that contradicts the configuration or cid.
func (c *codec) decode(sid, cid []byte) bool {
	if len(cid) < 1+c.plainLen || cid[0]&0xe0 != c.first {
		return false
	}
	if c.cfg.EncodeLength {
		if n := 1 + int(cid[0]&0x1f); n < 1+c.plainLen || n > len(cid) {
			return false
		}
	}
	if c.enc == nil {
		copy(sid, cid[1:1+c.cfg.ServerIDLen])
		return true
	}
	c.enc.decrypt(sid[:c.cfg.ServerIDLen], cid[1:1+c.plainLen])
	return true
}
