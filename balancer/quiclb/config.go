package quiclb

import (
	"errors"
	"fmt"
	"io"

	"github.com/lbkit/lbkit/internal/cfgerr"
)

// Limits of a configuration, from the draft's Section 4.2 and its YANG
// model (Appendix A).
const (
	// MaxConfigID is the highest usable config rotation codepoint;
	// UnroutableConfigID (7) marks connection IDs to be routed by
	// four-tuple.
	MaxConfigID        = 6
	UnroutableConfigID = 7

	MinServerIDLen = 1
	MaxServerIDLen = 15
	MinNonceLen    = 4
	MaxNonceLen    = 18

	// MaxPlaintextLen bounds ServerIDLen+NonceLen: with the first octet
	// the connection ID fits QUIC version 1's 20 octets.
	MaxPlaintextLen = 19

	// KeyLen is the length of the AES-128 key.
	KeyLen = 16
)

// Defaults for the zero Config: an 8-octet connection ID (quic-go's
// longest common setting and the listener's default short-header length)
// holding 65536 server IDs and 2^40 nonces per key.
const (
	DefaultServerIDLen = 2
	DefaultNonceLen    = 5
)

// ConfigError reports a refused configuration value: the field, the value
// and the reason, with the bound where there is one. Every package of lbkit
// uses this same type, so one errors.As serves them all.
type ConfigError = cfgerr.Error

func configErr(field string, value any, reason string) error {
	return cfgerr.New("quiclb", field, value, reason)
}

// ErrNonceExhausted is returned by Generator.GenerateConnectionID once
// every nonce of the configuration has been used: issuing another would
// repeat a connection ID. The draft's remedy (Section 8.6) is a new
// configuration, with a new key or at another codepoint.
var ErrNonceExhausted = errors.New("quiclb: nonce space exhausted; rotate to a new configuration")

// Config is one QUIC-LB configuration, shared by the load balancer
// (Decoder) and every server using it (Generator). All of them must hold
// the same ConfigID, ServerIDLen, NonceLen, Key and EncodeLength.
//
// The zero value is a usable plaintext configuration at codepoint 0 with
// 2-octet server IDs and 5-octet nonces.
type Config struct {
	// ConfigID is the config rotation codepoint written in the top three
	// bits of every connection ID, so a load balancer can hold an old and
	// a new configuration during a rotation (draft Section 2.1). Range
	// 0–6; 7 is reserved for unroutable IDs. The zero value is codepoint 0.
	ConfigID int

	// ServerIDLen is the length of a server ID in octets. If zero, 2 is
	// used. Range 1–15, and ServerIDLen+NonceLen at most 19.
	ServerIDLen int

	// NonceLen is the length of the nonce in octets; each server can
	// hand out 2^(8·NonceLen) connection IDs per key before it must rotate.
	// If zero, 5 is used. Range 4–18, and ServerIDLen+NonceLen at most 19.
	NonceLen int

	// Key is the 16-octet AES-128 key that hides server IDs from
	// observers. If nil or empty, connection IDs carry the server ID in
	// plaintext (anyone can read it). With a key, ServerIDLen+NonceLen of
	// exactly 16 selects single-pass AES-128-ECB, any other sum the
	// four-pass Feistel construction.
	Key []byte

	// EncodeLength makes the low five bits of the first octet carry the
	// connection ID's length minus one (draft Section 2.3), for hardware
	// offloads that need it. If false, those bits are random. Load
	// balancers with EncodeLength also check the encoded length.
	EncodeLength bool

	// Rand is the source of the generator's random nonce start and, in
	// plaintext mode, of the key that scrambles its nonces. If nil,
	// crypto/rand.Reader is used. The decoder does not use it.
	Rand io.Reader
}

// Mode is how a configuration encodes the server ID.
type Mode int

const (
	// Plaintext carries the server ID as is: no Key.
	Plaintext Mode = iota
	// SinglePass encrypts server ID and nonce as one AES-128-ECB block:
	// a Key and ServerIDLen+NonceLen == 16 (draft Section 4.3.1).
	SinglePass
	// FourPass encrypts them with a four-round Feistel network whose
	// round function is AES-128-ECB: a Key and any other length (draft
	// Section 4.3.2).
	FourPass
)

// String returns "plaintext", "single-pass" or "four-pass".
func (m Mode) String() string {
	switch m {
	case Plaintext:
		return "plaintext"
	case SinglePass:
		return "single-pass"
	case FourPass:
		return "four-pass"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Mode reports the encoding the configuration selects. It assumes a
// valid configuration.
func (c Config) Mode() Mode {
	c = c.withDefaults()
	switch {
	case len(c.Key) == 0:
		return Plaintext
	case c.ServerIDLen+c.NonceLen == 16:
		return SinglePass
	default:
		return FourPass
	}
}

// ConnIDLen returns the length of the connection IDs the configuration
// produces: 1 + ServerIDLen + NonceLen, after defaults. A UDP listener
// reading short headers needs it.
func (c Config) ConnIDLen() int {
	c = c.withDefaults()
	return 1 + c.ServerIDLen + c.NonceLen
}

func (c Config) withDefaults() Config {
	if c.ServerIDLen == 0 {
		c.ServerIDLen = DefaultServerIDLen
	}
	if c.NonceLen == 0 {
		c.NonceLen = DefaultNonceLen
	}
	return c
}

// Validate reports the first refused field of c, after defaults, as a
// *ConfigError; nil if c is usable.
func (c Config) Validate() error {
	_, err := c.effective()
	return err
}

// effective returns c with defaults filled and Key copied, or the first
// refused field.
func (c Config) effective() (Config, error) {
	c = c.withDefaults()
	switch {
	case c.ConfigID == UnroutableConfigID:
		return c, configErr("ConfigID", c.ConfigID, "codepoint 7 is reserved for unroutable connection IDs; range 0–6")
	case c.ConfigID < 0 || c.ConfigID > MaxConfigID:
		return c, configErr("ConfigID", c.ConfigID, "out of range 0–6")
	case c.ServerIDLen < MinServerIDLen || c.ServerIDLen > MaxServerIDLen:
		return c, configErr("ServerIDLen", c.ServerIDLen, "out of range 1–15 octets")
	case c.NonceLen < MinNonceLen || c.NonceLen > MaxNonceLen:
		return c, configErr("NonceLen", c.NonceLen, "out of range 4–18 octets")
	case c.ServerIDLen+c.NonceLen > MaxPlaintextLen:
		return c, configErr("NonceLen", c.NonceLen,
			fmt.Sprintf("ServerIDLen %d + NonceLen %d = %d octets, over 19 (a QUIC v1 connection ID is at most 20 octets)",
				c.ServerIDLen, c.NonceLen, c.ServerIDLen+c.NonceLen))
	case len(c.Key) != 0 && len(c.Key) != KeyLen:
		// The key itself is never echoed.
		return c, configErr("Key", fmt.Sprintf("%d octets", len(c.Key)), "an AES-128 key is 16 octets (or none, for plaintext)")
	}
	if len(c.Key) == 0 {
		c.Key = nil
	} else {
		c.Key = append([]byte(nil), c.Key...)
	}
	return c, nil
}
