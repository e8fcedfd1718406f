package quiclb

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// Generator issues QUIC-LB connection IDs for one server: it implements
// quic-go's ConnectionIDGenerator, so a quic.Transport given it
// (Transport.ConnectionIDGenerator) chooses only IDs that a Decoder of the
// same Config maps back to this server's ID, including the IDs it hands
// the client for migration.
//
// Each ID is the first octet (config rotation bits, then the length or
// random bits), the server ID and a nonce, protected as the Config's Mode
// says. The nonce is a counter from a random start, so it never repeats
// under one configuration; when the counter would come back to its start
// GenerateConnectionID returns ErrNonceExhausted instead. In plaintext mode
// the counter is scrambled under a key private to the Generator, because
// the draft forbids plaintext nonces that relate to earlier ones.
//
// A Generator is safe for concurrent use, and its IDs all have the length
// ConnectionIDLen reports, as quic-go requires. Use one Generator per
// server process and configuration: two Generators with the same server ID
// and key may issue the same ID.
type Generator struct {
	c     codec
	sid   ServerID
	start [MaxNonceLen]byte
	used  atomic.Uint64
	limit uint64 // number of nonces, 0 meaning 2^64 (never reached)
	mask  *prp   // plaintext mode: scrambles the counter
}

var _ quic.ConnectionIDGenerator = (*Generator)(nil)

// GeneratorConfig configures a [Generator]: the configuration every
// server and load balancer shares, and this server's own ID.
type GeneratorConfig struct {
	// Config is the shared QUIC-LB configuration; its zero value is a
	// usable plaintext one (see [Config]).
	Config Config
	// ServerID is this server's ID, Config.ServerIDLen octets long (after
	// defaults). Required.
	ServerID ServerID
}

// NewGenerator returns a generator configured by cfg, or a *ConfigError
// naming the first refused field. It reads the nonce start, and in
// plaintext mode a private key, from cfg.Config.Rand.
func NewGenerator(gc GeneratorConfig) (*Generator, error) {
	cfg, id := gc.Config, gc.ServerID
	c, err := newCodec(cfg)
	if err != nil {
		return nil, err
	}
	if id.Len() != c.cfg.ServerIDLen {
		return nil, configErr("ServerID", id.String(), fmt.Sprintf("length %d octets, want ServerIDLen %d", id.Len(), c.cfg.ServerIDLen))
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	g := &Generator{c: c, sid: id}
	n := c.cfg.NonceLen
	if _, err := io.ReadFull(r, g.start[:n]); err != nil {
		return nil, fmt.Errorf("quiclb: reading random nonce start: %w", err)
	}
	if n < 8 {
		g.limit = 1 << (8 * n)
	}
	if c.enc == nil {
		var key [KeyLen]byte
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return nil, fmt.Errorf("quiclb: reading random nonce key: %w", err)
		}
		p, err := newPRP(key[:], n)
		if err != nil {
			return nil, err
		}
		g.mask = &p
	}
	return g, nil
}

// GenerateConnectionID returns a new connection ID, or ErrNonceExhausted
// once the configuration's nonces are used up. It allocates nothing.
func (g *Generator) GenerateConnectionID() (quic.ConnectionID, error) {
	var cid [1 + MaxPlaintextLen]byte
	if err := g.next(cid[:]); err != nil {
		return quic.ConnectionID{}, err
	}
	return quic.ConnectionIDFromBytes(cid[:g.c.cidLen()]), nil
}

// ConnectionIDLen returns the length of every ID the generator issues:
// 1 + ServerIDLen + NonceLen.
func (g *Generator) ConnectionIDLen() int { return g.c.cidLen() }

// ServerID returns the server ID the generator encodes.
func (g *Generator) ServerID() ServerID { return g.sid }

// next writes the next connection ID to dst (ConnectionIDLen octets).
func (g *Generator) next(dst []byte) error {
	i := g.used.Add(1) - 1
	if g.limit != 0 && i >= g.limit {
		g.used.Store(g.limit) // keep the counter from ever wrapping
		return ErrNonceExhausted
	}
	var nonce [MaxNonceLen]byte
	n := g.c.cfg.NonceLen
	addBE(nonce[:n], g.start[:n], i)
	if g.mask != nil {
		g.mask.encrypt(nonce[:n], nonce[:n])
	}
	var low byte
	if !g.c.cfg.EncodeLength {
		// Unpredictable to observers, which is all the draft asks of
		// these bits; the runtime's ChaCha8 source neither locks nor
		// allocates.
		low = byte(mrand.Uint32())
	}
	g.c.encode(dst, g.sid.b[:], nonce[:n], low)
	return nil
}

// addBE sets dst to the big-endian sum of a and x, modulo 2^(8·len(dst)).
func addBE(dst, a []byte, x uint64) {
	var carry uint64
	for k := len(dst) - 1; k >= 0; k-- {
		s := uint64(a[k]) + x&0xff + carry
		dst[k] = byte(s)
		carry = s >> 8
		x >>= 8
	}
}

// String describes the generator without its key: mode, codepoint and
// server ID.
func (g *Generator) String() string {
	return fmt.Sprintf("quiclb.Generator(%s, config %d, server %s)", g.c.cfg.Mode(), g.c.cfg.ConfigID, hex.EncodeToString(g.sid.b[:g.sid.n]))
}
