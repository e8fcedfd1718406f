package quichandoff

import (
	"crypto/rand"

	"github.com/quic-go/quic-go"
)

// DefaultConnIDLen is the length of the connection IDs a Generator
// without an inner generator issues: 8 octets, random but for the
// generation bit (quic-go's own default is 4; 8 leaves 63 random bits).
const DefaultConnIDLen = 8

// maxConnIDLen is QUIC's bound on a connection ID (RFC 9000 §17.2).
const maxConnIDLen = 20

// Generator issues the connection IDs of one process generation: those
// of an inner generator, or random ones, with the lowest bit of the
// first octet set to the generation's parity (see the package doc).
//
// Give it to quic.Transport.ConnectionIDGenerator and the same one to
// NewConn. The inner generator must leave that bit free: a
// quiclb.Generator does, unless its Config has EncodeLength.
//
// A Generator is immutable and safe for concurrent use when its inner
// generator is; GenerateConnectionID allocates nothing.
type Generator struct {
	inner  quic.ConnectionIDGenerator
	parity byte
	n      int
}

var _ quic.ConnectionIDGenerator = (*Generator)(nil)

// NewGenerator returns the generator of generation (any integer: only
// its parity counts) over inner; a nil inner issues DefaultConnIDLen
// random octets.
func NewGenerator(inner quic.ConnectionIDGenerator, generation int) *Generator {
	g := &Generator{inner: inner, parity: byte(generation & 1), n: DefaultConnIDLen}
	if inner != nil {
		g.n = inner.ConnectionIDLen()
	}
	return g
}

// GenerateConnectionID returns the next ID, or the inner generator's
// error.
func (g *Generator) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [maxConnIDLen]byte
	if g.inner != nil {
		id, err := g.inner.GenerateConnectionID()
		if err != nil {
			return quic.ConnectionID{}, err
		}
		copy(b[:], id.Bytes())
	} else {
		rand.Read(b[:g.n]) // never fails (crypto/rand)
	}
	b[0] = b[0]&^1 | g.parity
	return quic.ConnectionIDFromBytes(b[:g.n]), nil
}

// ConnectionIDLen returns the length of every ID: the inner
// generator's, or DefaultConnIDLen.
func (g *Generator) ConnectionIDLen() int { return g.n }

// Generation returns the generation's parity, 0 or 1.
func (g *Generator) Generation() int { return int(g.parity) }
